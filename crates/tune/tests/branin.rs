//! Acceptance: on the Branin function (one parameter log-scaled), TPE's best value after 40
//! trials beats random search's on average over 10 seeds (the figures are in docs/tuning.md).

#[test]
fn tpe_beats_random_search_on_branin() {
    let rows = tune::bench::branin_compare(40, 0..10).unwrap();
    let mean = |f: fn(&(u64, f64, f64)) -> f64| rows.iter().map(f).sum::<f64>() / rows.len() as f64;
    let (tpe, random) = (mean(|r| r.1), mean(|r| r.2));
    assert!(tpe < random, "TPE mean best {tpe}, random {random}: {rows:?}");
    assert!(rows.iter().all(|r| r.1 >= tune::bench::BRANIN_MIN - 1e-9 && r.2 >= tune::bench::BRANIN_MIN - 1e-9));
}
