//! Recent demand per channel side, as Keel's nodes measure it: what went out and what was
//! refused for lack of balance, summed over the last few rebalancing intervals.
//!
//! One interval is a short window (30 minutes by default): on a large network most channels
//! see no payment in it even when they see several a day. Summing more windows
//! (`--demand-window`) reads a day's demand from a day's history; measured, that made Keel act
//! more often for no more success, so one window stays the default (docs/benchmarks.md).

use std::collections::VecDeque;

use keel_policy::Amount;

/// What one window saw on a channel side: `(channel, side, sent, refused)`.
type Seen = (u32, u8, Amount, Amount);

/// Flow sent and refused per channel side, over the current window and the last `windows`.
#[derive(Debug)]
pub struct Demand {
    sent: Vec<[Amount; 2]>,
    refused: Vec<[Amount; 2]>,
    sent_sum: Vec<[Amount; 2]>,
    refused_sum: Vec<[Amount; 2]>,
    closed: VecDeque<Vec<Seen>>,
    windows: usize,
}

impl Demand {
    /// Nothing seen on `channels` channels; sums span the last `windows` closed windows.
    pub fn new(channels: usize, windows: usize) -> Self {
        Self {
            sent: vec![[0; 2]; channels],
            refused: vec![[0; 2]; channels],
            sent_sum: vec![[0; 2]; channels],
            refused_sum: vec![[0; 2]; channels],
            closed: VecDeque::new(),
            windows: windows.max(1),
        }
    }

    /// Side `side` of `channel` sent `amount` in the current window.
    pub fn sent(&mut self, channel: u32, side: u8, amount: Amount) {
        self.sent[channel as usize][side as usize] += amount;
    }

    /// Side `side` of `channel` refused `amount` for lack of balance in the current window.
    pub fn refused(&mut self, channel: u32, side: u8, amount: Amount) {
        self.refused[channel as usize][side as usize] += amount;
    }

    /// Ends the current window: it joins the sums, and the window that falls out of the span
    /// leaves them.
    pub fn close_window(&mut self) {
        let mut seen = Vec::new();
        for (c, (sent, refused)) in self.sent.iter_mut().zip(&mut self.refused).enumerate() {
            for s in 0..2 {
                if sent[s] > 0 || refused[s] > 0 {
                    seen.push((c as u32, s as u8, sent[s], refused[s]));
                    self.sent_sum[c][s] += sent[s];
                    self.refused_sum[c][s] += refused[s];
                }
            }
            *sent = [0; 2];
            *refused = [0; 2];
        }
        self.closed.push_back(seen);
        if self.closed.len() > self.windows {
            for (c, s, sent, refused) in self.closed.pop_front().unwrap_or_default() {
                self.sent_sum[c as usize][s as usize] -= sent;
                self.refused_sum[c as usize][s as usize] -= refused;
            }
        }
    }

    /// What side `side` of `channel` sent over the span.
    pub fn sent_over_span(&self, channel: u32, side: u8) -> Amount {
        self.sent_sum[channel as usize][side as usize]
    }

    /// What side `side` of `channel` refused over the span.
    pub fn refused_over_span(&self, channel: u32, side: u8) -> Amount {
        self.refused_sum[channel as usize][side as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_cover_the_last_windows_only() {
        let mut d = Demand::new(2, 2);
        d.sent(1, 0, 5);
        d.refused(1, 1, 7);
        d.close_window();
        d.sent(1, 0, 3);
        d.close_window();
        assert_eq!(d.sent_over_span(1, 0), 8);
        assert_eq!(d.refused_over_span(1, 1), 7);
        d.close_window();
        // The first window fell out of the span.
        assert_eq!(d.sent_over_span(1, 0), 3);
        assert_eq!(d.refused_over_span(1, 1), 0);
        assert_eq!(d.sent_over_span(0, 0), 0);
    }
}
