//! Commands that read a plan and print: `validate` and `graph`.

use crate::cli::{GraphFormat, OutputFormat};
use crate::env;
use crate::exit::{CliError, Exit};
use std::path::Path;

pub(super) fn validate(plans: &[std::path::PathBuf], fmt: OutputFormat) -> Result<Exit, CliError> {
    let mut code = Exit::Ok;
    for p in plans {
        match env::load(p) {
            Ok(l) => {
                let steps = wbstack_plan::compile(&l.plan);
                if fmt == OutputFormat::Json {
                    println!(
                        "{}",
                        serde_json::json!({"file": l.file, "valid": true, "steps": steps.len()})
                    );
                } else {
                    println!("{}: valid ({} steps)", l.file, steps.len());
                }
            }
            Err(f) => {
                eprintln!("{f}");
                code = f.exit();
            }
        }
    }
    Ok(code)
}

pub(super) fn graph(path: &Path, format: GraphFormat) -> Result<Exit, CliError> {
    let l = env::load(path)?;
    let steps = wbstack_plan::compile(&l.plan);
    match format {
        GraphFormat::Dot => {
            println!(
                "digraph \"{}\" {{\n  rankdir=LR;\n  node [shape=box];",
                l.plan.metadata.name
            );
            for s in &steps {
                println!("  \"{}\" [label=\"{}\\n{}\"];", s.id, s.id, s.kind.label());
            }
            for s in &steps {
                for d in &s.deps {
                    println!("  \"{d}\" -> \"{}\";", s.id);
                }
            }
            println!("}}");
        }
        GraphFormat::Mermaid => {
            println!("flowchart LR");
            let id = |s: &str| s.replace(['.', '-'], "_");
            for s in &steps {
                println!("  {}[\"{}<br/>{}\"]", id(&s.id), s.id, s.kind.label());
            }
            for s in &steps {
                for d in &s.deps {
                    println!("  {} --> {}", id(d), id(&s.id));
                }
            }
        }
    }
    Ok(Exit::Ok)
}
