//! Raw throughput of `SqliteQueue`: enqueue N jobs in batches, then lease and ack them in
//! batches, and print jobs/s of each phase. Usage:
//! `cargo run --release -p kiln-sqlite --example queue_bench -- [N] [BATCH]`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kiln_core::ids::RunId;
use kiln_core::queue::{JobQueue, LeaseOptions, NewJob, priority};
use kiln_sqlite::SqliteQueue;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let batch: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1_000);
    let dir = tempfile::tempdir()?;
    let q = SqliteQueue::open(&dir.path().join("queue.sqlite")).await?;
    let payload = Bytes::from_static(b"render:guides:items/000000000042:0123456789abcdef");

    let start = Instant::now();
    let mut left = n;
    while left > 0 {
        let k = left.min(10_000);
        let jobs = (0..k)
            .map(|_| NewJob {
                payload: payload.clone(),
                priority: priority::RENDER,
                not_before: None,
                max_attempts: 5,
                run: Some(RunId(1)),
                fence: Some(("guides".into(), 1)),
            })
            .collect();
        q.enqueue(jobs).await?;
        left -= k;
    }
    let enq = start.elapsed();
    println!(
        "enqueue: {n} jobs in {enq:.2?}: {:.0} jobs/s",
        n as f64 / enq.as_secs_f64()
    );

    let opts = LeaseOptions {
        max_jobs: batch,
        visibility: Duration::from_secs(60),
    };
    let start = Instant::now();
    let mut done = 0;
    let (mut t_lease, mut t_ack) = (Duration::ZERO, Duration::ZERO);
    loop {
        let t = Instant::now();
        let jobs = q.lease(&opts).await?;
        t_lease += t.elapsed();
        if jobs.is_empty() {
            break;
        }
        let leases: Vec<_> = jobs.iter().map(|j| j.lease).collect();
        let t = Instant::now();
        done += q.ack(&leases).await? as usize;
        t_ack += t.elapsed();
    }
    println!("  of which lease {t_lease:.2?}, ack {t_ack:.2?}");
    let drain = start.elapsed();
    println!(
        "lease+ack (batch {batch}): {done} jobs in {drain:.2?}: {:.0} jobs/s",
        done as f64 / drain.as_secs_f64()
    );
    let total = enq + drain;
    println!("overall: {:.0} jobs/s", n as f64 / total.as_secs_f64());
    let t = q.tally(RunId(1)).await?;
    assert_eq!((t.enqueued, t.done), (n as u64, n as u64));
    Ok(())
}
