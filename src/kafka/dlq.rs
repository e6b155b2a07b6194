//! Dead letters: a record omniroute cannot use goes unchanged (same key and payload) to the
//! dead-letter topic, with headers saying why and where it came from.

use rdkafka::message::{Header, OwnedHeaders};

pub const REASON: &str = "omniroute.reason";
pub const ERROR: &str = "omniroute.error";
pub const SOURCE_TOPIC: &str = "omniroute.source.topic";
pub const SOURCE_PARTITION: &str = "omniroute.source.partition";
pub const SOURCE_OFFSET: &str = "omniroute.source.offset";

/// Headers of one dead letter.
pub fn headers(
    reason: &str,
    error: &str,
    topic: &str,
    partition: i32,
    offset: i64,
) -> OwnedHeaders {
    let partition = partition.to_string();
    let offset = offset.to_string();
    OwnedHeaders::new_with_capacity(5)
        .insert(Header {
            key: REASON,
            value: Some(reason),
        })
        .insert(Header {
            key: ERROR,
            value: Some(error),
        })
        .insert(Header {
            key: SOURCE_TOPIC,
            value: Some(topic),
        })
        .insert(Header {
            key: SOURCE_PARTITION,
            value: Some(&partition),
        })
        .insert(Header {
            key: SOURCE_OFFSET,
            value: Some(&offset),
        })
}

#[cfg(test)]
mod tests {
    use rdkafka::message::Headers;

    use super::*;

    #[test]
    fn headers_name_reason_and_source() {
        let h = headers(
            "invalid_json",
            "record is not valid JSON",
            "omniroute.events",
            3,
            42,
        );
        let got: Vec<(String, String)> = h
            .iter()
            .map(|h| {
                (
                    h.key.to_string(),
                    String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (REASON, "invalid_json"),
                (ERROR, "record is not valid JSON"),
                (SOURCE_TOPIC, "omniroute.events"),
                (SOURCE_PARTITION, "3"),
                (SOURCE_OFFSET, "42"),
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
    }
}
