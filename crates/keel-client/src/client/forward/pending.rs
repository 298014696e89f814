//! Onions that arrived ahead of their locks. A peer sends each onion just before the update
//! adding its lock, so an honest channel has at most one update's worth waiting at a time
//! (`MAX_UPDATE_CHANGES`). They are held per channel, each channel capped on its own: a peer
//! that sends onions and no locks pushes out only its own oldest, never the onion a
//! neighbour's lock is about to claim. Memory is bounded by our channels, each of which has a
//! vault on chain: 32 onions of 1,409 bytes, 45 KB, per channel at most.

use std::collections::{HashMap, VecDeque};

use keel_core::{forwarding::onion::Packet, B256};

/// Most onions held for one channel's locks that have not arrived yet: one update's locks.
pub(super) const MAX_PER_CHANNEL: usize = keel_core::wire::MAX_UPDATE_CHANGES;

/// Onions by channel, oldest first, each with its lock's secret hash.
#[derive(Debug, Default)]
pub(super) struct PendingOnions(HashMap<B256, VecDeque<(B256, Packet)>>);

impl PendingOnions {
    /// Holds `packet` for the lock with `secret_hash` the peer is about to add in `channel`
    /// (replacing an earlier onion for the same lock).
    pub(super) fn hold(&mut self, channel: B256, secret_hash: B256, packet: Packet) {
        let queue = self.0.entry(channel).or_default();
        if let Some(held) = queue.iter_mut().find(|(hash, _)| *hash == secret_hash) {
            held.1 = packet;
            return;
        }
        if queue.len() >= MAX_PER_CHANNEL {
            queue.pop_front();
        }
        queue.push_back((secret_hash, packet));
    }

    /// The onion held for the lock with `secret_hash` in `channel`, no longer held.
    pub(super) fn take(&mut self, channel: B256, secret_hash: B256) -> Option<Packet> {
        let queue = self.0.get_mut(&channel)?;
        let at = queue.iter().position(|(hash, _)| *hash == secret_hash)?;
        let (_, packet) = queue.remove(at)?;
        if queue.is_empty() {
            self.0.remove(&channel);
        }
        Some(packet)
    }
}

#[cfg(test)]
mod tests {
    use keel_core::{forwarding::onion::PACKET_LEN, U256};

    use super::*;

    fn packet(byte: u8) -> Packet {
        Packet(Box::new([byte; PACKET_LEN]))
    }

    fn hash(n: u64) -> B256 {
        B256::from(U256::from(n))
    }

    /// A flood on one channel pushes out that channel's oldest onions only: the onion another
    /// channel's peer sent just before its lock is still there when the lock arrives.
    #[test]
    fn a_flooding_channel_pushes_out_only_its_own_onions() {
        let (honest, flooding) = (B256::repeat_byte(1), B256::repeat_byte(2));
        let mut pending = PendingOnions::default();
        pending.hold(honest, hash(7), packet(7));
        for n in 0..10_000 {
            pending.hold(flooding, hash(n), packet(1));
        }
        assert_eq!(pending.take(honest, hash(7)), Some(packet(7)));
        assert_eq!(pending.0[&flooding].len(), MAX_PER_CHANNEL);
        let newest = 10_000 - 1;
        assert!(pending.take(flooding, hash(newest)).is_some());
        assert!(
            pending.take(flooding, hash(0)).is_none(),
            "the oldest went first"
        );
    }

    /// An onion is taken once; a resent one replaces the one held; a channel with nothing
    /// left holds no entry.
    #[test]
    fn onions_are_taken_once_and_replaced_when_resent() {
        let channel = B256::repeat_byte(3);
        let mut pending = PendingOnions::default();
        pending.hold(channel, hash(1), packet(1));
        pending.hold(channel, hash(1), packet(2));
        assert_eq!(pending.take(channel, hash(1)), Some(packet(2)));
        assert_eq!(pending.take(channel, hash(1)), None);
        assert!(pending.0.is_empty());
        assert_eq!(pending.take(B256::repeat_byte(4), hash(1)), None);
    }
}
