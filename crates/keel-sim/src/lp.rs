//! The Revive-style linear program (Khalil and Gervais 2017): every node declares how far each
//! of its channels is from an even split; one program finds the largest circulation that moves
//! each channel towards even from its richer side, under flow conservation at every node (no
//! node gains or loses money). Solved with good_lp's pure-Rust microlp backend.

use std::time::{Duration, Instant};

use good_lp::{constraint, variable, Expression, ProblemVariables, Solution, SolverModel};
use keel_policy::Amount;

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

/// Solves the program on the current balances. Only channels whose richer side holds at least
/// `threshold_ppm` of capacity more than half take part. Bounds are counted in `grain`s (the
/// program is a network flow, so its vertex solutions are integral in grains and conservation
/// holds exactly after rounding).
pub fn revive(net: &Network, threshold_ppm: u32) -> Result<Circulation> {
    let start = Instant::now();
    let max_cap = net.channels.iter().map(|c| c.capacity()).max().unwrap_or(0);
    // Keep bounds below 2^40 grains so the solver's floats hold them exactly.
    let grain = (max_cap >> 40).max(1);
    let mut vars = ProblemVariables::new();
    let mut flows = Vec::new();
    let mut balance: Vec<Expression> = vec![Expression::from(0.0); net.node_count()];
    let mut objective = Expression::from(0.0);
    let mut involved = vec![false; net.node_count()];
    for (i, ch) in net.channels.iter().enumerate() {
        let cap = ch.capacity();
        let half = cap / 2;
        let rich = usize::from(ch.balance[1] > ch.balance[0]);
        let excess = ch.balance[rich].saturating_sub(half);
        if cap == 0 || excess.saturating_mul(1_000_000) < cap * u128::from(threshold_ppm) {
            continue;
        }
        let bound = (excess / grain) as f64;
        if bound < 1.0 {
            continue;
        }
        let f = vars.add(variable().min(0.0).max(bound));
        let from = ch.nodes[rich] as usize;
        let to = ch.nodes[1 - rich] as usize;
        involved[from] = true;
        involved[to] = true;
        balance[from] -= f;
        balance[to] += f;
        objective += f;
        flows.push((i as u32, rich as u8, f));
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
