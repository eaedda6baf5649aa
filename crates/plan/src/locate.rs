//! Where each field of a YAML document is: an index from dotted paths (`spec.mysql.host`,
//! `spec.hooks.db[0]`) to 1-based line and column, built from the parser's events.

use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Line and column, both 1-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// Positions of keys and values by path.
#[derive(Debug, Default)]
pub struct Locations {
    keys: HashMap<String, Pos>,
    values: HashMap<String, Pos>,
}

impl Locations {
    /// Indexes a YAML text; an unparsable text gives an empty index.
    pub fn index(text: &str) -> Self {
        let mut r = Recv::default();
        let mut p = Parser::new_from_str(text);
        let _ = p.load(&mut r, false);
        r.loc
    }

    /// The position of a field's value, or of the nearest parent that exists.
    pub fn value(&self, path: &str) -> Option<Pos> {
        self.lookup(path, &self.values)
    }

    /// The position of a field's key, or of the nearest parent that exists.
    pub fn key(&self, path: &str) -> Option<Pos> {
        self.lookup(path, &self.keys)
    }

    fn lookup(&self, path: &str, first: &HashMap<String, Pos>) -> Option<Pos> {
        let mut p = path.to_owned();
        loop {
            if let Some(x) = first.get(&p).or_else(|| self.keys.get(&p)) {
                return Some(*x);
            }
            match p.rfind(['.', '[']) {
                Some(i) => p.truncate(i),
                None => return None,
            }
        }
    }
}

enum Frame {
    Map {
        key: Option<String>,
        expecting_key: bool,
    },
    Seq {
        index: usize,
    },
}

#[derive(Default)]
struct Recv {
    stack: Vec<Frame>,
    path: Vec<String>,
    loc: Locations,
}

fn pos(m: Marker) -> Pos {
    Pos {
        line: m.line(),
        column: m.col() + 1,
    }
}

impl Recv {
    fn current(&self) -> String {
        let mut s = String::new();
        for seg in &self.path {
            if seg.starts_with('[') || s.is_empty() {
                s.push_str(seg);
            } else {
                s.push('.');
                s.push_str(seg);
            }
        }
        s
    }

    /// A value starts at `m`: name its path, record it.
    fn value_start(&mut self, m: Marker) -> bool {
        let seg = match self.stack.last_mut() {
            Some(Frame::Map {
                key: Some(k),
                expecting_key: false,
            }) => Some(k.clone()),
            Some(Frame::Seq { index }) => Some(format!("[{index}]")),
            None => None,
            _ => return false,
        };
        if let Some(seg) = seg {
            self.path.push(seg);
        }
        let p = self.current();
        self.loc.values.entry(p).or_insert(pos(m));
        true
    }

    /// The value just recorded is complete.
    fn value_end(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Map { key, expecting_key }) => {
                *key = None;
                *expecting_key = true;
                self.path.pop();
            }
            Some(Frame::Seq { index }) => {
                *index += 1;
                self.path.pop();
            }
            None => {}
        }
    }
}

impl MarkedEventReceiver for Recv {
    fn on_event(&mut self, ev: Event, m: Marker) {
        match ev {
            Event::Scalar(s, ..) => {
                if let Some(Frame::Map { key, expecting_key }) = self.stack.last_mut() {
                    if *expecting_key {
                        *key = Some(s.clone());
                        *expecting_key = false;
                        let mut path = self.path.clone();
                        path.push(s);
                        let saved = std::mem::replace(&mut self.path, path);
                        let p = self.current();
                        self.path = saved;
                        self.loc.keys.entry(p).or_insert(pos(m));
                        return;
                    }
                }
                if self.value_start(m) {
                    self.value_end();
                }
            }
            Event::MappingStart(..) => {
                self.value_start(m);
                self.stack.push(Frame::Map {
                    key: None,
                    expecting_key: true,
                });
            }
            Event::SequenceStart(..) => {
                self.value_start(m);
                self.stack.push(Frame::Seq { index: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.value_end();
            }
            Event::Alias(_) if self.value_start(m) => self.value_end(),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_lines_and_columns() {
        let text = "a: 1\nspec:\n  mysql:\n    host: db\n  hooks:\n    x:\n    - when: before\n      command: [a, b]\n";
        let l = Locations::index(text);
        assert_eq!(l.key("spec.mysql.host"), Some(Pos { line: 4, column: 5 }));
        assert_eq!(
            l.value("spec.mysql.host"),
            Some(Pos {
                line: 4,
                column: 11
            })
        );
        assert_eq!(
            l.key("spec.hooks.x[0].when"),
            Some(Pos { line: 7, column: 7 })
        );
        assert_eq!(
            l.value("spec.hooks.x[0].command[1]"),
            Some(Pos {
                line: 8,
                column: 20
            })
        );
        // A missing field falls back to its nearest parent.
        assert_eq!(l.key("spec.mysql.port"), Some(Pos { line: 3, column: 3 }));
    }
}

#[cfg(test)]
mod block_tests {
    use super::*;

    #[test]
    fn block_mapping_positions() {
        let text = "spec:\n  wandb:\n    host: x\n  mysql:\n    mode: external\n";
        let l = Locations::index(text);
        assert_eq!(l.key("spec.mysql"), Some(Pos { line: 4, column: 3 }));
        assert_eq!(
            l.value("spec.mysql.mode"),
            Some(Pos {
                line: 5,
                column: 11
            })
        );
        let v = l.value("spec.mysql").unwrap();
        assert!(v.line >= 4, "{v:?}");
    }
}
