//! A hostile or broken agent: every malformed stream is a clear error, and
//! nothing it says makes us touch a block outside the device.

use super::*;
use altishift_agent::protocol::{TAG_DATA, TAG_ERROR, TAG_ZERO, digest_of, write_frame};
use proptest::prelude::*;

/// A device of three full blocks and a 100-byte fourth.
const SIZE: u64 = 3 * BLOCK_SIZE + 100;

fn data(index: u64, len: usize) -> Frame {
    let bytes = vec![7u8; len];
    Frame::Data {
        index,
        digest: digest_of(&bytes),
        bytes,
    }
}

fn full(index: u64) -> Frame {
    data(index, block_len(SIZE, index))
}

/// MAGIC and these frames, then `tail` raw bytes.
fn wire(frames: &[Frame], tail: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    for frame in frames {
        write_frame(&mut out, frame).unwrap();
    }
    out.extend_from_slice(tail);
    out
}

/// A raw block frame header with any length (the writer would not make it).
fn raw(tag: u8, index: u64, len: u32) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&index.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    if tag == TAG_DATA {
        out.extend_from_slice(&[0u8; 32]);
    }
    out
}

/// What the data reader does with a stream (`read_agent` without the
/// buffer): the blocks it would deliver, or its error.
fn data_stream(
    bytes: &[u8],
    ranges: &[Range<u64>],
    size: u64,
) -> Result<Vec<(u64, usize)>, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut input = bytes;
        read_magic(&mut input).await.map_err(|e| e.to_string())?;
        let mut expect = Expect::new(ranges, size, false);
        let mut blocks = Vec::new();
        loop {
            let frame = next_frame(&mut input).await.map_err(|e| e.to_string())?;
            match expect.check(frame)? {
                Checked::End => return Ok(blocks),
                Checked::Block(index, Block::Data { bytes, .. }) => {
                    blocks.push((index, bytes.len()))
                }
                Checked::Block(index, Block::Zero { len }) => blocks.push((index, len)),
                Checked::Block(index, Block::Digest(_)) => blocks.push((index, 0)),
            }
        }
    })
}

fn digest_stream(bytes: &[u8], ranges: &[Range<u64>], size: u64) -> Result<Vec<u64>, String> {
    parse_digests(bytes, ranges, size)
        .map(|d| d.into_iter().map(|(i, _)| i).collect())
        .map_err(|fault| match fault {
            StreamFault::Cut(e) | StreamFault::Bad(e) => e,
        })
}

/// (what the agent does, its bytes, ranges asked for, digest stream?, error)
type Case = (&'static str, Vec<u8>, Vec<Range<u64>>, bool, &'static str);

#[test]
fn hostile_agent_streams_are_refused_with_the_reason() {
    let all: Vec<Range<u64>> = std::iter::once(0..4).collect();
    let cat = |parts: &[&[u8]]| parts.concat();
    let mut bad_magic = b"ALTISHIFT-AGENT/9\n".to_vec();
    write_frame(&mut bad_magic, &Frame::End).unwrap();
    let cases: Vec<Case> = vec![
        (
            "says nothing",
            vec![],
            all.to_vec(),
            false,
            "cut short inside the protocol greeting",
        ),
        (
            "speaks another protocol",
            bad_magic,
            all.to_vec(),
            false,
            "does not speak our protocol",
        ),
        (
            "sends an unknown tag",
            wire(&[], &[0]),
            all.to_vec(),
            false,
            "unknown frame tag 0x00",
        ),
        (
            "claims a 4 GiB block",
            wire(&[], &raw(TAG_DATA, 0, u32::MAX)),
            all.to_vec(),
            false,
            "more than a block",
        ),
        (
            "claims a block and one byte",
            wire(&[], &raw(TAG_DATA, 0, BLOCK_SIZE as u32 + 1)),
            all.to_vec(),
            false,
            "more than a block",
        ),
        (
            "claims a huge zero block",
            wire(&[], &raw(TAG_ZERO, 0, u32::MAX)),
            all.to_vec(),
            false,
            "more than a block",
        ),
        (
            "sends block u64::MAX",
            wire(&[full(0), data(u64::MAX, 100)], &[]),
            all.to_vec(),
            false,
            "past the end of the device",
        ),
        (
            "sends the block after the last",
            wire(&[full(0), full(1), full(2), full(3), data(4, 100)], &[]),
            all.to_vec(),
            false,
            "more blocks than were asked for",
        ),
        (
            "skips ahead",
            wire(&[full(1)], &[]),
            all.to_vec(),
            false,
            "block 1 arrived where block 0 was expected",
        ),
        (
            "sends a block twice",
            wire(&[full(0), full(0)], &[]),
            all.to_vec(),
            false,
            "block 0 arrived where block 1 was expected",
        ),
        (
            "sends a block not asked for",
            wire(&[full(0), full(2)], &[]),
            vec![0..1, 3..4],
            false,
            "block 2 arrived where block 3 was expected",
        ),
        (
            "sends a full last block",
            wire(
                &[full(0), full(1), full(2), data(3, BLOCK_SIZE as usize)],
                &[],
            ),
            all.to_vec(),
            false,
            "block 3: 524288 bytes, expected 100",
        ),
        (
            "sends a short block",
            wire(&[data(0, 10)], &[]),
            all.to_vec(),
            false,
            "block 0: 10 bytes, expected 524288",
        ),
        (
            "sends an empty zero block",
            wire(&[Frame::Zero { index: 0, len: 0 }], &[]),
            all.to_vec(),
            false,
            "block 0: 0 bytes",
        ),
        (
            "stops inside a header",
            wire(&[], &raw(TAG_DATA, 0, 100)[..6]),
            all.to_vec(),
            false,
            "cut short inside a frame header",
        ),
        (
            "stops inside a block",
            wire(&[], &cat(&[&raw(TAG_DATA, 0, BLOCK_SIZE as u32), &[1; 10]])),
            all.to_vec(),
            false,
            "cut short inside a frame's payload",
        ),
        (
            "never sends the end",
            wire(&[full(0), full(1), full(2), full(3)], &[]),
            all.to_vec(),
            false,
            "cut short inside a frame tag",
        ),
        (
            "ends early",
            wire(&[full(0), Frame::End], &[]),
            all.to_vec(),
            false,
            "ended the stream before block 1",
        ),
        (
            "claims a 4 GiB message",
            wire(&[], &cat(&[&[TAG_ERROR], &u32::MAX.to_be_bytes()])),
            all.to_vec(),
            false,
            "at most 65536",
        ),
        (
            "reports a failure",
            wire(&[Frame::Error("disk on fire".into())], &[]),
            all.to_vec(),
            false,
            "the agent failed: disk on fire",
        ),
        (
            "sends digests for data",
            wire(
                &[Frame::Digest {
                    index: 0,
                    len: BLOCK_SIZE as u32,
                    digest: [0; 32],
                }],
                &[],
            ),
            all.to_vec(),
            false,
            "digest frame in a data stream",
        ),
        (
            "sends data for digests",
            wire(&[full(0)], &[]),
            all.to_vec(),
            true,
            "data frame in a digest stream",
        ),
        (
            "sends a digest past the end",
            wire(
                &[Frame::Digest {
                    index: 9,
                    len: 1,
                    digest: [0; 32],
                }],
                &[],
            ),
            all.to_vec(),
            true,
            "block 9 is past the end",
        ),
        (
            "ends a digest stream early",
            wire(
                &[
                    Frame::Zero {
                        index: 0,
                        len: BLOCK_SIZE as u32,
                    },
                    Frame::End,
                ],
                &[],
            ),
            all.to_vec(),
            true,
            "ended the stream before block 1",
        ),
    ];
    assert!(cases.len() >= 15);
    for (what, bytes, ranges, digests, expected) in cases {
        let result = if digests {
            digest_stream(&bytes, &ranges, SIZE).map(|b| b.len())
        } else {
            data_stream(&bytes, &ranges, SIZE).map(|b| b.len())
        };
        match result {
            Ok(n) => panic!("an agent that {what} was accepted ({n} blocks)"),
            Err(err) => assert!(
                err.contains(expected),
                "an agent that {what}: expected '{expected}', got '{err}'"
            ),
        }
    }
}

#[test]
fn an_honest_stream_is_taken_whole() {
    let bytes = wire(
        &[
            full(0),
            Frame::Zero {
                index: 1,
                len: BLOCK_SIZE as u32,
            },
            full(3),
            Frame::End,
        ],
        &[],
    );
    let blocks = data_stream(&bytes, &[0..2, 3..4], SIZE).unwrap();
    assert_eq!(
        blocks,
        vec![(0, BLOCK_SIZE as usize), (1, BLOCK_SIZE as usize), (3, 100)]
    );
}

#[test]
fn the_agents_map_is_clipped_to_the_device() {
    // Past the end, inverted, overlapping, out of order, and absurd.
    let map = [
        [2, 3],
        [0, u64::MAX],
        [10, 5],
        [1, 2],
        [u64::MAX - 1, u64::MAX],
    ];
    assert_eq!(clip_ranges(&map, SIZE), vec![0..4]);
    assert_eq!(clip_ranges(&[[5, 9]], SIZE), Vec::<Range<u64>>::new());
    assert_eq!(
        clip_ranges(&[[3, 1], [2, 3], [0, 1]], SIZE),
        vec![0..1, 2..3]
    );
    assert_eq!(clip_ranges(&[[0, 1]], 0), Vec::<Range<u64>>::new());
    assert_eq!(block_len(SIZE, u64::MAX), 0);
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (any::<u64>(), proptest::collection::vec(any::<u8>(), 0..64)).prop_map(|(index, bytes)| {
            Frame::Data {
                index,
                digest: digest_of(&bytes),
                bytes,
            }
        }),
        (any::<u64>(), 0..=BLOCK_SIZE as u32).prop_map(|(index, len)| Frame::Zero { index, len }),
        (any::<u64>(), 0..=BLOCK_SIZE as u32, any::<[u8; 32]>())
            .prop_map(|(index, len, digest)| Frame::Digest { index, len, digest }),
        Just(Frame::End),
        ".{0,40}".prop_map(Frame::Error),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever bytes follow the greeting, the decoder and the checks give a
    /// result or an error, never a panic, and never a block outside the
    /// ranges asked for or of the wrong length.
    #[test]
    fn any_bytes_after_the_greeting_are_safe(
        tail in proptest::collection::vec(any::<u8>(), 0..256),
        blocks in 0u64..6,
        short in 0u64..BLOCK_SIZE,
        start in 0u64..8,
        len in 0u64..8,
        digests in any::<bool>(),
    ) {
        let size = blocks * BLOCK_SIZE + short;
        let ranges: Vec<Range<u64>> = std::iter::once(start..start + len).collect();
        let bytes = wire(&[], &tail);
        let blocks = if digests {
            digest_stream(&bytes, &ranges, size).map(|b| b.into_iter().map(|i| (i, 0)).collect())
        } else {
            data_stream(&bytes, &ranges, size)
        };
        if let Ok(blocks) = blocks {
            for (index, len) in blocks {
                prop_assert!(ranges[0].contains(&index));
                prop_assert!(index * BLOCK_SIZE < size);
                prop_assert!(digests || len == block_len(size, index));
            }
        }
    }

    /// Every frame the writer makes reads back the same, one after another.
    #[test]
    fn frames_round_trip(frames in proptest::collection::vec(frame(), 0..8)) {
        let mut bytes = Vec::new();
        for frame in &frames {
            write_frame(&mut bytes, frame).unwrap();
        }
        let mut input = bytes.as_slice();
        for frame in &frames {
            prop_assert_eq!(&protocol::read_frame(&mut input).unwrap(), frame);
        }
        prop_assert!(input.is_empty());
    }
}
