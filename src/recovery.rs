//! Crash recovery: state snapshots, clock records, and reading back what was already produced.
//!
//! The invariants (docs/RECOVERY.md has the whole argument):
//! - **The input partition is the whole truth.** A partition's engines see nothing but its
//!   records, in offset order: events, and *clock records* that the owner writes into the same
//!   partition when a timer is due. Engine time is the largest record timestamp or clock value
//!   seen. So replaying a partition from a snapshot gives byte-identical outputs.
//! - **One output stream per input partition.** Outputs of input partition `p` go to partition
//!   `p` of the assignments topic, in order (idempotent producer), each with the header
//!   `omniroute.seq`: 0, 1, 2, … with no gaps across owners and restarts.
//! - **A snapshot implies its outputs.** A snapshot of `p` taken after input offset `o` is
//!   written only once every output of records up to `o` is acknowledged, and offsets are
//!   committed only at acknowledged snapshots.
//! - **Recovery** loads `p`'s latest complete snapshot, reads the last `omniroute.seq` on
//!   output partition `p`, replays the input from the snapshot on, and produces only outputs
//!   with a larger sequence number. Nothing is lost (the replay regenerates what was not
//!   delivered) and nothing is produced twice (what was delivered is suppressed).

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::event::Millis;

/// Key of the clock records the owner writes into its input partitions. Reserved: no tenant
/// may be called this.
pub const CLOCK_KEY: &[u8] = b"omniroute.clock";
/// Output header: the output's position in its partition's output stream.
pub const SEQ_HEADER: &str = "omniroute.seq";
/// State-topic header: `{snapshot id}/{chunk index}/{chunk count}`.
pub const CHUNK_HEADER: &str = "omniroute.snapshot";
/// Chunks stay well under Kafka's default 1 MB record limit.
pub const CHUNK_BYTES: usize = 512 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("cannot create the recovery reader: {0}")]
    Reader(rdkafka::error::KafkaError),
    #[error("cannot read {topic}[{partition}]: {message}")]
    Read {
        topic: String,
        partition: i32,
        message: String,
    },
    #[error("snapshot of {topic}[{partition}] is unreadable: {message}")]
    Corrupt {
        topic: String,
        partition: i32,
        message: String,
    },
}

/// The value of a clock record: the owner's wall clock when a timer was due.
pub fn clock_payload(at: Millis) -> Vec<u8> {
    at.to_string().into_bytes()
}

/// Reads a clock record; `None` when the payload is not a number (then it is dead-lettered).
pub fn clock_value(payload: Option<&[u8]>) -> Option<Millis> {
    std::str::from_utf8(payload?).ok()?.trim().parse().ok()
}

/// The header of an output record: its sequence number and the input record it came from.
pub fn output_headers(seq: u64, topic: &str, partition: i32, offset: i64) -> OwnedHeaders {
    // The numbers are formatted on the stack: librdkafka copies header values.
    let (mut a, mut b, mut c) = (
        itoa::Buffer::new(),
        itoa::Buffer::new(),
        itoa::Buffer::new(),
    );
    OwnedHeaders::new_with_capacity(4)
        .insert(Header {
            key: SEQ_HEADER,
            value: Some(a.format(seq).as_bytes()),
        })
        .insert(Header {
            key: crate::kafka::dlq::SOURCE_TOPIC,
            value: Some(topic.as_bytes()),
        })
        .insert(Header {
            key: crate::kafka::dlq::SOURCE_PARTITION,
            value: Some(b.format(partition).as_bytes()),
        })
        .insert(Header {
            key: crate::kafka::dlq::SOURCE_OFFSET,
            value: Some(c.format(offset).as_bytes()),
        })
}

/// Splits a snapshot into state-topic records: (payload, headers).
pub fn chunks(bytes: &[u8], id: u64) -> Vec<(&[u8], OwnedHeaders)> {
    let parts: Vec<&[u8]> = if bytes.is_empty() {
        vec![bytes]
    } else {
        bytes.chunks(CHUNK_BYTES).collect()
    };
    let n = parts.len();
    parts
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let v = format!("{id}/{i}/{n}");
            let h = OwnedHeaders::new_with_capacity(1).insert(Header {
                key: CHUNK_HEADER,
                value: Some(&v),
            });
            (c, h)
        })
        .collect()
}

fn header<'a, M: Message>(m: &'a M, key: &str) -> Option<&'a [u8]> {
    m.headers()?
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| h.value)
}

fn parse_chunk(v: &[u8]) -> Option<(u64, u32, u32)> {
    let s = std::str::from_utf8(v).ok()?;
    let mut it = s.split('/').map(str::parse::<u64>);
    let id = it.next()?.ok()?;
    let i = u32::try_from(it.next()?.ok()?).ok()?;
    let n = u32::try_from(it.next()?.ok()?).ok()?;
    (i < n).then_some((id, i, n))
}

/// Reads single records at chosen offsets of topic partitions, without a consumer group.
pub struct Reader {
    consumer: BaseConsumer,
    timeout: Duration,
}

struct Rec {
    offset: i64,
    payload: Vec<u8>,
    seq: Option<u64>,
    chunk: Option<(u64, u32, u32)>,
}

impl Reader {
    /// `base` carries brokers and security; the reader adds its own consumer settings.
    pub fn new(base: &ClientConfig, timeout: Duration) -> Result<Self, RecoveryError> {
        let mut c = base.clone();
        c.set("group.id", "omniroute-recovery-reader")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", "10")
            .set("auto.offset.reset", "error");
        let consumer = c.create().map_err(RecoveryError::Reader)?;
        Ok(Reader { consumer, timeout })
    }

    fn read_error(topic: &str, partition: i32, message: impl ToString) -> RecoveryError {
        RecoveryError::Read {
            topic: topic.to_string(),
            partition,
            message: message.to_string(),
        }
    }

    /// (low, high) watermarks: the first offset kept and the next offset to be written.
    pub fn watermarks(&self, topic: &str, partition: i32) -> Result<(i64, i64), RecoveryError> {
        self.consumer
            .fetch_watermarks(topic, partition, self.timeout)
            .map_err(|e| Self::read_error(topic, partition, e))
    }

    /// Records from `from` on: `count` of them, or with `count` = `None` all up to the end of
    /// the partition (until nothing more arrives for a moment).
    fn read(
        &self,
        topic: &str,
        partition: i32,
        from: i64,
        count: Option<usize>,
    ) -> Result<Vec<Rec>, RecoveryError> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(from))
            .map_err(|e| Self::read_error(topic, partition, e))?;
        self.consumer
            .assign(&tpl)
            .map_err(|e| Self::read_error(topic, partition, e))?;
        let deadline = Instant::now() + self.timeout;
        let mut last_record = Instant::now();
        let mut out = Vec::new();
        while count.is_none_or(|n| out.len() < n) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Self::read_error(
                    topic,
                    partition,
                    format!("timed out reading from offset {from}"),
                ));
            }
            match self.consumer.poll(left.min(Duration::from_millis(50))) {
                None => {
                    if count.is_none() && last_record.elapsed() >= TAIL_IDLE {
                        break;
                    }
                }
                Some(Err(e)) => return Err(Self::read_error(topic, partition, e)),
                Some(Ok(m)) => {
                    last_record = Instant::now();
                    if m.offset() < from {
                        continue;
                    }
                    out.push(Rec {
                        offset: m.offset(),
                        payload: m.payload().unwrap_or_default().to_vec(),
                        seq: header(&m, SEQ_HEADER)
                            .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok()),
                        chunk: header(&m, CHUNK_HEADER).and_then(parse_chunk),
                    });
                }
            }
        }
        let _ = self.consumer.unassign();
        Ok(out)
    }

    /// The last record of a partition before `end` (exclusive; `None`: the current end).
    ///
    /// The high watermark is only a starting point: some brokers report the base offset of
    /// the last batch + 1 rather than the last offset + 1, so the tail is read forward from
    /// there to the real end.
    fn last_before(
        &self,
        topic: &str,
        partition: i32,
        end: Option<i64>,
    ) -> Result<Option<Rec>, RecoveryError> {
        let (low, high) = self.watermarks(topic, partition)?;
        let start = match end {
            Some(e) => (e - 1).max(low),
            None => (high - 1).max(low),
        };
        if end.is_some_and(|e| e <= low) || (end.is_none() && high <= low) {
            return Ok(None);
        }
        let tail = match end {
            Some(_) => self.read(topic, partition, start, Some(1))?,
            None => self.read(topic, partition, start, None)?,
        };
        Ok(tail.into_iter().last())
    }

    /// The last `omniroute.seq` on an output partition: every output up to it was produced.
    /// `None` when the partition holds no output of omniroute's.
    pub fn last_seq(&self, topic: &str, partition: i32) -> Result<Option<u64>, RecoveryError> {
        Ok(self
            .last_before(topic, partition, None)?
            .and_then(|r| r.seq))
    }

    /// The newest complete snapshot on a state partition, as the bytes it was split from.
    /// Snapshots whose writer died half-way are skipped for the one before.
    pub fn latest_snapshot(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Option<Vec<u8>>, RecoveryError> {
        let (low, _) = self.watermarks(topic, partition)?;
        let mut end = None;
        loop {
            let Some(last) = self.last_before(topic, partition, end)? else {
                return Ok(None);
            };
            let Some((id, i, n)) = last.chunk else {
                // Not a chunk of ours: step over it.
                end = Some(last.offset);
                continue;
            };
            let first = last.offset - i64::from(i);
            if i + 1 == n && first >= low {
                let recs = self.read(topic, partition, first, Some(n as usize))?;
                let whole = recs.len() == n as usize
                    && recs.iter().enumerate().all(|(k, r)| {
                        r.chunk == Some((id, k as u32, n)) && r.offset == first + k as i64
                    });
                if whole {
                    let mut bytes = Vec::with_capacity(recs.iter().map(|r| r.payload.len()).sum());
                    for r in recs {
                        bytes.extend_from_slice(&r.payload);
                    }
                    return Ok(Some(bytes));
                }
            }
            // Incomplete (a writer died mid-snapshot) or cut by retention: try the one before.
            if first <= low {
                return Ok(None);
            }
            end = Some(first);
        }
    }
}

/// How long the tail of a partition must stay silent to count as its end.
const TAIL_IDLE: Duration = Duration::from_millis(300);

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_in_headers_are_plain_decimals() {
        for (seq, partition, offset) in [
            (0u64, 0i32, 0i64),
            (7, 10, 42),
            (u64::MAX, -1, -42),
            (10, i32::MAX, i64::MIN),
        ] {
            let h = super::output_headers(seq, "in", partition, offset);
            let value = |i: usize| rdkafka::message::Headers::get(&h, i).value;
            assert_eq!(value(0), Some(seq.to_string().as_bytes()), "{seq}");
            assert_eq!(
                value(2),
                Some(partition.to_string().as_bytes()),
                "{partition}"
            );
            assert_eq!(value(3), Some(offset.to_string().as_bytes()), "{offset}");
        }
    }

    use super::*;

    #[test]
    fn clock_records_round_trip_and_reject_garbage() {
        assert_eq!(
            clock_value(Some(&clock_payload(1_795_449_600_123))),
            Some(1_795_449_600_123)
        );
        assert_eq!(clock_value(Some(b"soon")), None);
        assert_eq!(clock_value(None), None);
    }

    #[test]
    fn chunks_say_their_place() {
        let bytes = vec![7u8; CHUNK_BYTES * 2 + 10];
        let c = chunks(&bytes, 42);
        assert_eq!(c.len(), 3);
        let parsed: Vec<_> = c
            .iter()
            .map(|(_, h)| parse_chunk(h.get(0).value.unwrap_or_default()))
            .collect();
        assert_eq!(
            parsed,
            [Some((42, 0, 3)), Some((42, 1, 3)), Some((42, 2, 3))]
        );
        assert_eq!(c.iter().map(|(p, _)| p.len()).sum::<usize>(), bytes.len());
        assert_eq!(chunks(&[], 1).len(), 1, "an empty state is one empty chunk");
        assert_eq!(parse_chunk(b"1/3/3"), None, "index past the count");
        assert_eq!(parse_chunk(b"x/0/1"), None);
    }
}
