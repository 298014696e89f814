//! The Revive-style linear program (Khalil and Gervais 2017): every node declares how far each
//! of its channels is from an even split; one program finds the largest circulation that moves
//! each channel towards even from its richer side, under flow conservation at every node (no
//! node gains or loses money). The simulator solves it as a maximum circulation in exact
//! integers ([`revive`], see [`crate::circulation`]); [`revive_simplex`] states the same program
//! to good_lp's pure-Rust simplex (microlp), kept as the reference the tests hold it to and for
//! `keel-sim lp-bench` to compare.

use std::time::{Duration, Instant};

use good_lp::{constraint, variable, Expression, ProblemVariables, Solution, SolverModel};
use keel_policy::Amount;

use crate::circulation::{self, Arc};
use crate::error::{Error, Result};
use crate::network::Network;

/// The program's answer: how much to move on each channel, from which side.
#[derive(Debug, Clone, Default)]
pub struct Circulation {
    /// `(channel, sending side, amount)`.
    pub moves: Vec<(u32, u8, Amount)>,
    /// Variables in the program (channels that were not even).
    pub variables: usize,
    /// Time spent building and solving it.
    pub solve_time: Duration,
}

/// The channels that take part: those whose richer side holds at least `threshold_ppm` of
/// capacity more than half, as `(channel, richer side, excess over half)`.
fn uneven(net: &Network, threshold_ppm: u32) -> Vec<(u32, u8, Amount)> {
    let mut out = Vec::new();
    for (i, ch) in net.channels.iter().enumerate() {
        let cap = ch.capacity();
        let rich = usize::from(ch.balance[1] > ch.balance[0]);
        let excess = ch.balance[rich].saturating_sub(cap / 2);
        if cap == 0
            || excess == 0
            || ch.nodes[0] == ch.nodes[1]
            || excess.saturating_mul(1_000_000) < cap.saturating_mul(u128::from(threshold_ppm))
        {
            continue;
        }
        out.push((i as u32, rich as u8, excess));
    }
    out
}

/// Solves the program on the current balances, exactly, as a maximum circulation.
pub fn revive(net: &Network, threshold_ppm: u32) -> Result<Circulation> {
    let start = Instant::now();
    let uneven = uneven(net, threshold_ppm);
    let arcs: Vec<Arc> = uneven
        .iter()
        .map(|&(c, rich, excess)| {
            let ch = &net.channels[c as usize];
            Arc {
                from: ch.nodes[rich as usize],
                to: ch.nodes[1 - rich as usize],
                bound: excess,
            }
        })
        .collect();
    let carried = circulation::maximum(net.node_count(), &arcs)?;
    let moves = uneven
        .iter()
        .zip(carried)
        .filter(|(_, x)| *x > 0)
        .map(|(&(c, rich, _), x)| (c, rich, x))
        .collect();
    Ok(Circulation {
        moves,
        variables: arcs.len(),
        solve_time: start.elapsed(),
    })
}

/// The same program handed to the simplex (good_lp + microlp). Bounds are counted in `grain`s
/// so the solver's floats hold them exactly (the program is a network flow, so its vertex
/// solutions are integral in grains and conservation holds after rounding).
pub fn revive_simplex(net: &Network, threshold_ppm: u32) -> Result<Circulation> {
    let start = Instant::now();
    let max_cap = net.channels.iter().map(|c| c.capacity()).max().unwrap_or(0);
    // Keep bounds below 2^40 grains so the solver's floats hold them exactly.
    let grain = (max_cap >> 40).max(1);
    let mut vars = ProblemVariables::new();
    let mut flows = Vec::new();
    let mut balance: Vec<Expression> = vec![Expression::from(0.0); net.node_count()];
    let mut objective = Expression::from(0.0);
    let mut involved = vec![false; net.node_count()];
    for (c, rich, excess) in uneven(net, threshold_ppm) {
        let bound = (excess / grain) as f64;
        if bound < 1.0 {
            continue;
        }
        let ch = &net.channels[c as usize];
        let f = vars.add(variable().min(0.0).max(bound));
        let from = ch.nodes[rich as usize] as usize;
        let to = ch.nodes[1 - rich as usize] as usize;
        involved[from] = true;
        involved[to] = true;
        balance[from] -= f;
        balance[to] += f;
        objective += f;
        flows.push((c, rich, f));
    }
    let variables = flows.len();
    if flows.is_empty() {
        return Ok(Circulation {
            solve_time: start.elapsed(),
            ..Default::default()
        });
    }
    let mut model = vars.maximise(objective).using(good_lp::microlp);
    for (b, involved) in balance.into_iter().zip(involved) {
        if involved {
            model = model.with(constraint!(b == 0.0));
        }
    }
    let solution = model.solve().map_err(|e| Error::Lp(e.to_string()))?;
    let moves = flows
        .into_iter()
        .filter_map(|(c, side, f)| {
            let grains = solution.value(f).round();
            (grains >= 1.0).then(|| (c, side, grains as Amount * grain))
        })
        .collect();
    Ok(Circulation {
        moves,
        variables,
        solve_time: start.elapsed(),
    })
}

/// Applies a circulation: each move shifts balance from its side to the other, never more than
/// the side holds.
pub fn apply(net: &mut Network, c: &Circulation) -> Amount {
    let mut moved = 0;
    for &(ch, side, amount) in &c.moves {
        let channel = &mut net.channels[ch as usize];
        let s = side as usize;
        let x = amount.min(channel.balance[s]);
        channel.balance[s] -= x;
        channel.balance[1 - s] += x;
        moved += x;
    }
    moved
}
