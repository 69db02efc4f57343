//! corral-bench: a load generator that speaks the Kafka protocol (through the kafka-protocol
//! crate, as corral itself does), and the scenarios of `bench/run.sh`. Every scenario prints
//! one JSON line with its figures, so the report can be assembled by a script.
//!
//!     cargo build --release -p corral-bench        # target/release/corral-bench
//!
//!     corral-bench startup --bin PATH [--runs N] [--tansu | --floor]   (--floor: PATH is corral-bench itself)
//!     corral-bench echo-server --listen HOST:PORT
//!     corral-bench coordinator --target HOST:PORT [--groups G] [--members M] [--seconds S] [--raw] [--find-coordinator]
//!     corral-bench join-storm --target HOST:PORT [--groups G] [--members M]
//!     corral-bench produce --target HOST:PORT [--acks 1|-1] [--records-per-batch N] [--connections C] [--seconds S] [--raw]
//!         [--pid PID] [--upstream-pid PID] [--leader-addr HOST:PORT]
//!     corral-bench fetch --target HOST:PORT [--messages N] [--read-committed] [--pid PID] [--upstream-pid PID] [--leader-addr HOST:PORT]
//!     corral-bench relay-server --listen HOST:PORT --upstream HOST:PORT
//!     corral-bench commits --target HOST:PORT [--committers C] [--seconds S]
//!     corral-bench offsets-replay --bin PATH [--records N]
//!     corral-bench compaction [--commits N] [--keys K]
//!     corral-bench restart --bin PATH [--megabytes M]
//!     corral-bench transactions --target HOST:PORT [--producers P] [--records-per-txn N] [--seconds S] [--idempotent] [--no-create] [--pid PID]
//!     corral-bench failover --targets HOST:PORT,... [--groups G] [--limit-seconds S]
//!
//! `produce` and `fetch` send each partition's requests to the address of its leader in a
//! Metadata response from `--target`, so they run unchanged through `corral proxy` (whose
//! Metadata lists every upstream broker at a listener of the proxy's). `--pid` names the
//! process whose CPU is counted per request (the server, or the proxy); `--upstream-pid`, a
//! second one (the broker behind a proxy). `--leader-addr` sends every request there instead of
//! following Metadata (through `relay-server`, whose Metadata is the upstream's, unrewritten).
//!
//! One module per scenario (`offsets` holds offsets-replay and compaction, `coordinator` holds
//! join-storm); beside them: `args` (the command line), `measure` (the figures: CPU, RSS,
//! percentiles, JSON), `kafka` (the requests scenarios share), `groups` (members joining groups
//! as clients do) and `server` (a corral process on a data dir). The raw client, record
//! batches and process start-up come from `corral-testkit`, shared with corral's tests.

mod args;
mod commits;
mod coordinator;
mod echo_server;
mod failover;
mod fetch;
mod groups;
mod kafka;
mod measure;
mod offsets;
mod produce;
mod relay_server;
mod restart;
mod server;
mod startup;
mod transactions;

use args::Args;

fn main() {
    let args = Args::parse();
    if args.scenario == "relay-server" {
        // its own runtime, built as corral's, not the load generator's single worker
        relay_server::run(&args.str("listen"), &args.str("upstream"));
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    rt.block_on(async move {
        match args.scenario.as_str() {
            "startup" => startup::run(&args).await,
            "echo-server" => echo_server::run(&args.str("listen")).await,
            "coordinator" => coordinator::run(&args).await,
            "join-storm" => coordinator::join_storm(&args).await,
            "produce" => produce::run(&args).await,
            "fetch" => fetch::run(&args).await,
            "commits" => commits::run(&args).await,
            "offsets-replay" => offsets::replay(&args).await,
            "compaction" => offsets::compaction(&args).await,
            "restart" => restart::run(&args).await,
            "transactions" => transactions::run(&args).await,
            "failover" => failover::run(&args).await,
            other => {
                eprintln!("unknown scenario {other}");
                std::process::exit(2);
            }
        }
    });
}
