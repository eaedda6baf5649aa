//! Fake clouds: where synthetic steps keep their resources. `FileCloud` lives in a directory so
//! that separate processes (a killed run and its resume) see the same resources; `MemCloud` lives
//! in memory and tells time with tokio's clock, for paused-clock tests and benchmarks.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// A resource as the fake cloud stores it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    pub name: String,
    pub fingerprint: String,
    /// Who made it: the environment's tag, or something else for pre-existing resources.
    pub tag: String,
    pub ready_at_us: u64,
    #[serde(default)]
    pub gone_at_us: Option<u64>,
}

/// An injected fault for one resource.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Fault {
    /// Every apply fails permanently.
    Permanent,
    /// The next N applies fail transiently.
    Transient(u32),
    /// Created, but never becomes ready.
    NeverReady,
}

/// What a synthetic step needs from a cloud.
pub trait Cloud: Send + Sync + 'static {
    /// Microseconds on this cloud's clock.
    fn now_us(&self) -> u64;
    /// The resource, if it exists (a resource past its deletion time is gone).
    fn get(&self, name: &str) -> Option<Resource>;
    /// Creates unless it exists; true if this call created it.
    fn create(&self, r: &Resource) -> bool;
    /// Replaces an existing resource.
    fn put(&self, r: &Resource);
    /// Records a call (`apply`, `create`, `destroy`, `delete`, ...).
    fn log(&self, op: &str, name: &str);
    /// Notes that a step saw its resource ready (for benchmarks' timing; optional).
    fn note_ready(&self, _name: &str) {}
    /// Takes one use of the fault for `name`, if any.
    fn take_fault(&self, name: &str) -> Option<Fault>;
    /// Every resource name.
    fn list(&self) -> Vec<String>;
}

fn wall_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// A fake cloud in a directory: `res/<name>.json`, `calls.log`, `faults/<name>.json`.
#[derive(Debug, Clone)]
pub struct FileCloud {
    dir: PathBuf,
}

impl FileCloud {
    /// Opens (or creates) the cloud in `dir`.
    pub fn new(dir: &Path) -> Self {
        let _ = std::fs::create_dir_all(dir.join("res"));
        let _ = std::fs::create_dir_all(dir.join("faults"));
        FileCloud {
            dir: dir.to_owned(),
        }
    }

    fn res_path(&self, name: &str) -> PathBuf {
        self.dir.join("res").join(format!("{name}.json"))
    }

    /// Sets a fault for a resource.
    pub fn set_fault(&self, name: &str, fault: &Fault) {
        let _ = std::fs::write(
            self.dir.join("faults").join(format!("{name}.json")),
            serde_json::to_vec(fault).unwrap_or_default(),
        );
    }

    /// Every logged call, in order, as (op, name).
    pub fn calls(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(self.dir.join("calls.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (op, name) = l.split_once(' ')?;
                Some((op.to_owned(), name.to_owned()))
            })
            .collect()
    }

    /// How many times each name was logged with `op`.
    pub fn count(&self, op: &str) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for (o, n) in self.calls() {
            if o == op {
                *m.entry(n).or_insert(0) += 1;
            }
        }
        m
    }
}

impl Cloud for FileCloud {
    fn now_us(&self) -> u64 {
        wall_us()
    }

    fn get(&self, name: &str) -> Option<Resource> {
        let bytes = std::fs::read(self.res_path(name)).ok()?;
        let r: Resource = serde_json::from_slice(&bytes).ok()?;
        if r.gone_at_us.is_some_and(|g| self.now_us() >= g) {
            // Logged before the file goes: a process killed in between must not remove a
            // resource unrecorded (a second entry for the same removal is harmless).
            self.log("deleted", name);
            let _ = std::fs::remove_file(self.res_path(name));
            return None;
        }
        Some(r)
    }

    fn create(&self, r: &Resource) -> bool {
        // Write aside, then link into place: atomic, and fails if the name exists.
        let tmp = self.dir.join("res").join(format!(
            ".{}.{}.{}.tmp",
            r.name,
            std::process::id(),
            rand::random::<u32>()
        ));
        if std::fs::write(&tmp, serde_json::to_vec(r).unwrap_or_default()).is_err() {
            return false;
        }
        let created = std::fs::hard_link(&tmp, self.res_path(&r.name)).is_ok();
        let _ = std::fs::remove_file(&tmp);
        if created {
            self.log("create", &r.name);
        }
        created
    }

    fn put(&self, r: &Resource) {
        let tmp = self.dir.join("res").join(format!(".{}.put.tmp", r.name));
        if std::fs::write(&tmp, serde_json::to_vec(r).unwrap_or_default()).is_ok() {
            let _ = std::fs::rename(&tmp, self.res_path(&r.name));
        }
    }

    fn log(&self, op: &str, name: &str) {
        if let Ok(mut f) = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("calls.log"))
        {
            let _ = f.write_all(format!("{op} {name}\n").as_bytes());
        }
    }

    fn take_fault(&self, name: &str) -> Option<Fault> {
        let p = self.dir.join("faults").join(format!("{name}.json"));
        let fault: Fault = serde_json::from_slice(&std::fs::read(&p).ok()?).ok()?;
        if let Fault::Transient(n) = fault {
            if n <= 1 {
                let _ = std::fs::remove_file(&p);
            } else {
                let _ = std::fs::write(
                    &p,
                    serde_json::to_vec(&Fault::Transient(n - 1)).unwrap_or_default(),
                );
            }
        }
        Some(fault)
    }

    fn list(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.join("res"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| {
                        let n = e.file_name().to_string_lossy().into_owned();
                        n.strip_suffix(".json")
                            .filter(|_| !n.starts_with('.'))
                            .map(str::to_owned)
                    })
                    .collect()
            })
            .unwrap_or_default();
        names.retain(|n| self.get(n).is_some());
        names.sort();
        names
    }
}

/// A fake cloud in memory, on tokio's clock.
#[derive(Debug)]
pub struct MemCloud {
    start: tokio::time::Instant,
    inner: Mutex<MemInner>,
}

#[derive(Debug, Default)]
struct MemInner {
    res: HashMap<String, Resource>,
    faults: HashMap<String, Fault>,
    calls: Vec<(String, String)>,
    created_at: HashMap<String, u64>,
    ready_seen: HashMap<String, u64>,
}

impl MemCloud {
    /// An empty cloud whose clock starts now.
    pub fn new() -> Self {
        MemCloud {
            start: tokio::time::Instant::now(),
            inner: Mutex::new(MemInner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets a fault for a resource.
    pub fn set_fault(&self, name: &str, fault: Fault) {
        self.lock().faults.insert(name.to_owned(), fault);
    }

    /// Every logged call, in order.
    pub fn calls(&self) -> Vec<(String, String)> {
        self.lock().calls.clone()
    }

    /// How many calls were logged with `op`.
    pub fn count(&self, op: &str) -> usize {
        self.lock().calls.iter().filter(|(o, _)| o == op).count()
    }

    /// For each resource: how long (µs) from its creation until its step saw it ready.
    pub fn seen_ready_after_us(&self) -> HashMap<String, u64> {
        let g = self.lock();
        g.ready_seen
            .iter()
            .filter_map(|(n, &seen)| Some((n.clone(), seen.saturating_sub(*g.created_at.get(n)?))))
            .collect()
    }
}

impl Default for MemCloud {
    fn default() -> Self {
        Self::new()
    }
}

impl Cloud for MemCloud {
    fn now_us(&self) -> u64 {
        (tokio::time::Instant::now() - self.start).as_micros() as u64
    }

    fn get(&self, name: &str) -> Option<Resource> {
        let now = self.now_us();
        let mut g = self.lock();
        let r = g.res.get(name)?.clone();
        if r.gone_at_us.is_some_and(|t| now >= t) {
            g.res.remove(name);
            g.calls.push(("deleted".into(), name.into()));
            return None;
        }
        Some(r)
    }

    fn create(&self, r: &Resource) -> bool {
        let mut g = self.lock();
        if g.res.contains_key(&r.name) {
            return false;
        }
        let now = (tokio::time::Instant::now() - self.start).as_micros() as u64;
        g.res.insert(r.name.clone(), r.clone());
        g.calls.push(("create".into(), r.name.clone()));
        g.created_at.insert(r.name.clone(), now);
        true
    }

    fn put(&self, r: &Resource) {
        self.lock().res.insert(r.name.clone(), r.clone());
    }

    fn log(&self, op: &str, name: &str) {
        self.lock().calls.push((op.into(), name.into()));
    }

    fn note_ready(&self, name: &str) {
        let now = self.now_us();
        self.lock().ready_seen.entry(name.to_owned()).or_insert(now);
    }

    fn take_fault(&self, name: &str) -> Option<Fault> {
        let mut g = self.lock();
        let f = g.faults.get(name).cloned()?;
        if let Fault::Transient(n) = f {
            if n <= 1 {
                g.faults.remove(name);
            } else {
                g.faults.insert(name.to_owned(), Fault::Transient(n - 1));
            }
        }
        Some(f)
    }

    fn list(&self) -> Vec<String> {
        let names: Vec<String> = self.lock().res.keys().cloned().collect();
        let mut names: Vec<String> = names
            .into_iter()
            .filter(|n| self.get(n).is_some())
            .collect();
        names.sort();
        names
    }
}
