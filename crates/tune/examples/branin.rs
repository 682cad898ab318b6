//! TPE against random search on the Branin function: the best value after 40 trials, for 10
//! seeds, as the Markdown table in docs/tuning.md. `cargo run --release -p tune --example branin`.

#![allow(clippy::print_stdout, reason = "an example prints its table")]

fn main() -> Result<(), tune::Error> {
    let (trials, seeds) = (40, 0..10);
    let rows = tune::bench::branin_compare(trials, seeds)?;
    println!("Best Branin value after {trials} trials (global minimum {:.6}):\n", tune::bench::BRANIN_MIN);
    println!("| seed | TPE | random |\n|---:|---:|---:|");
    for (seed, tpe, random) in &rows {
        println!("| {seed} | {tpe:.4} | {random:.4} |");
    }
    let n = rows.len() as f64;
    let mean = |f: &dyn Fn(&(u64, f64, f64)) -> f64| rows.iter().map(f).sum::<f64>() / n;
    let median = |f: &dyn Fn(&(u64, f64, f64)) -> f64| {
        let mut v: Vec<f64> = rows.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    println!("| **mean** | **{:.4}** | **{:.4}** |", mean(&|r| r.1), mean(&|r| r.2));
    println!("| median | {:.4} | {:.4} |", median(&|r| r.1), median(&|r| r.2));
    let wins = rows.iter().filter(|r| r.1 < r.2).count();
    println!("\nTPE better than random on {wins} of {} seeds.", rows.len());
    Ok(())
}
