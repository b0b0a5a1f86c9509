//! Limits that no hostile plugin is needed for: the instance cap, and fuel accounting of a
//! step that stays within its budget.

use crate::host::{Host, job};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_with_more_core_instances_than_its_cap_is_refused_as_resource_limit() {
    // Even the no-op component instantiates more than one core instance (its main module
    // and the canonical-ABI glue), so a cap of 1 must refuse it.
    let host = Host::new(&job("capped", "noop", "{}", "{ instances = 1 }")).await;
    let step = host.run_one("capped").await;
    assert_eq!(step["outcome"], "resource-limit", "{step:#}");
    let error = step["error"].as_str().unwrap();
    assert!(
        error.starts_with("instance, table or memory count over the cap of 1: "),
        "{error}"
    );
    host.assert_still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_within_its_fuel_budget_succeeds_and_records_what_it_burned() {
    let host = Host::new(&job(
        "bounded",
        "hostile-loop",
        "{ iterations = 100_000 }",
        "{ fuel = 100_000_000 }",
    ))
    .await;
    let step = host.run_one("bounded").await;
    assert_eq!(step["outcome"], "succeeded", "{step:#}");
    let burned = step["fuel_consumed"].as_u64().unwrap();
    // Each round is three shifts and three xors at the least: 600,000 operators.
    assert!(burned >= 600_000, "burned {burned}");
    assert!(burned < 100_000_000, "burned {burned}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stack_cap_is_per_step() {
    // 5,000 calls deep fits the default 512 KiB stack (about 100 bytes a frame allowed)
    // and cannot fit 64 KiB (13 bytes a frame: less than a return address and a frame
    // pointer).
    let deep = "{ depth = 5000 }";
    let jobs = job("roomy", "hostile-recurse", deep, "{}")
        + &job("cramped", "hostile-recurse", deep, "{ stack_kib = 64 }");
    let host = Host::new(&jobs).await;
    let roomy = host.run_one("roomy").await;
    assert_eq!(roomy["outcome"], "succeeded", "{roomy:#}");
    let cramped = host.run_one("cramped").await;
    assert_eq!(cramped["outcome"], "stack-overflow", "{cramped:#}");
    assert_eq!(cramped["error"], "wasm stack overflow (cap 64 KiB)");
    // The default engine still serves the default cap afterwards.
    assert_eq!(host.run_one("roomy").await["outcome"], "succeeded");
    host.assert_still_serves().await;
}
