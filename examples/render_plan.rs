//! Compiles a plan into its step graph and renders the WeightsAndBiases resource, without a
//! cluster or a cloud account: what `wbstack graph` and `wbstack render` do, as a library.
//!
//! ```sh
//! cargo run --example render_plan -- plans/poc.yaml
//! ```

use wbstack_plan::StepKind;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let file = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "plans/poc.yaml".into());
    let text = std::fs::read_to_string(&file)?;
    // Every problem is reported at file:line:column before anything is touched.
    let plan = wbstack_plan::parse(&file, &text)?;
    let steps = wbstack_plan::compile(&plan);
    println!("{} steps:", steps.len());
    for s in &steps {
        println!("  {:<24} {:<28} after {:?}", s.id, s.kind.label(), s.deps);
    }
    for s in &steps {
        if let StepKind::WandbResource(w) = &s.kind {
            let manifest = wbstack_k8s::render::wandb(&w.namespace, &w.name, &w.chart, &w.values);
            println!("---\n{}", serde_yaml_ng::to_string(&manifest)?);
            for b in &w.bindings {
                println!(
                    "# {} comes from the `{}` output of {}",
                    b.pointer, b.input.output, b.input.step
                );
            }
        }
    }
    Ok(())
}
