//! Pathfinding time on the real Lightning topology (`../shared/data/ln-snapshot`, 6,006 nodes,
//! 30,457 channels, with their fees), on its first 10,000 channels and on all of it:
//! `cargo bench -p keel-routing`. Prints p50/p99/max per search and how many found a route.
//! Without the snapshot it says so and exits. Besides wall-clock time it reports the time the
//! search spent on a processor (`CLOCK_THREAD_CPUTIME_ID`), which other processes' load on this
//! 2-core machine does not inflate.

use std::{
    collections::HashMap,
    fs,
    path::Path,
    time::{Duration, Instant},
};

use keel_core::{forwarding::FeePolicy, Address, B256, U256};
use keel_routing::{find_route, Asset, Channel, DirectionPolicy, Graph, RouteParams, Scorer};

const SEARCHES: usize = 2_000;
const NOW: u64 = 1_800_000_000;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/ln-snapshot");
    let (Ok(channels), Ok(edges)) = (
        fs::read_to_string(dir.join("channels_ln.csv")),
        fs::read_to_string(dir.join("edges_ln.csv")),
    ) else {
        println!("no ln-snapshot at {}: nothing to measure", dir.display());
        return;
    };
    for limit in [10_000, usize::MAX] {
        let graph = load(&channels, &edges, limit);
        measure(&graph);
        let start = Instant::now();
        for _ in 0..100 {
            std::hint::black_box(graph.clone());
        }
        // What each payment attempt paid before the client shared the gossip's graph.
        println!("  copying the graph: {:.2?}", start.elapsed() / 100);
    }
}

fn address(node: u64) -> Address {
    Address::left_padding_from(&(node + 1).to_be_bytes())
}

fn load(channels: &str, edges: &str, limit: usize) -> Graph {
    let asset = Asset {
        chain_id: 1,
        token: Address::ZERO,
    };
    let mut graph = Graph::new();
    let mut nodes_of = HashMap::new();
    for line in channels.lines().skip(1).take(limit) {
        let f: Vec<u64> = line.split(',').map(|x| x.parse().unwrap()).collect();
        let (id, a, b, capacity) = (f[0], f[3], f[4], f[5]);
        if a == b {
            continue;
        }
        let channel = B256::left_padding_from(&id.to_be_bytes());
        graph
            .add_channel(Channel {
                id: channel,
                asset,
                nodes: [address(a), address(b)],
                capacity: U256::from(capacity),
            })
            .unwrap();
        nodes_of.insert(id, channel);
    }
    for line in edges.lines().skip(1) {
        // id,channel_id,counter_edge_id,from_node_id,to_node_id,balance,fee_base,fee_proportional,min_htlc,timelock
        let f: Vec<u64> = line.split(',').map(|x| x.parse().unwrap()).collect();
        let Some(channel) = nodes_of.get(&f[1]) else {
            continue;
        };
        let policy = DirectionPolicy {
            fee: FeePolicy {
                base: U256::from(f[6]),
                proportional_millionths: f[7] as u32,
            },
            // Lightning's delta is in blocks of about ten minutes.
            expiry_delta: f[9] * 600,
            min_amount: U256::from(f[8]),
            enabled: true,
            rates: Vec::new(),
            updated: 1,
        };
        let _ = graph.update_policy(channel, address(f[3]), policy);
    }
    graph
}

fn measure(graph: &Graph) {
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let nodes = graph.node_count() as u64;
    let scorer = Scorer::default();
    let params = RouteParams {
        max_lifetime: 30 * 86_400 * 10,
        ..RouteParams::default()
    };
    let mut times = Vec::with_capacity(SEARCHES);
    let mut cpu = Vec::with_capacity(SEARCHES);
    let mut found = 0;
    for _ in 0..SEARCHES {
        let (payer, payee) = (address(next() % nodes), address(next() % nodes));
        // 10,000 to 10,000,000 msat.
        let amount = U256::from(10_000 * 10u64.pow((next() % 4) as u32));
        let (start, on_cpu) = (Instant::now(), cpu_time());
        let route = find_route(graph, &scorer, payer, payee, amount, &params, NOW);
        times.push(start.elapsed());
        cpu.push(cpu_time().saturating_sub(on_cpu));
        found += usize::from(route.is_ok());
    }
    times.sort();
    cpu.sort();
    let at = |v: &[Duration], q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
    println!(
        "{} channels, {} nodes: {SEARCHES} searches, {found} found a route\n  wall: p50 {:.2?}, p99 {:.2?}, max {:.2?}\n  on cpu: p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        graph.channel_count(),
        graph.node_count(),
        at(&times, 0.5),
        at(&times, 0.99),
        times[times.len() - 1],
        at(&cpu, 0.5),
        at(&cpu, 0.99),
        cpu[cpu.len() - 1],
    );
}

/// Time this thread has spent on a processor.
fn cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec; the call only writes it.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(status, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}
