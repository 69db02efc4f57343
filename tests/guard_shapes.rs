//! Cross-checks the guard's shape tables (src/protocol/guard/) against `kafka-protocol`, the
//! decoder they protect, for requests and responses alike.
//!
//! From our own shape of each (api, version) a random *encoder* builds valid request and
//! response bodies; the guard must accept them whole, the crate must decode them completely and
//! re-encode them byte for byte. Any disagreement means a shape is wrong. The same bodies,
//! truncated and bit-flipped, must never make the guard panic, and whatever the guard lets
//! through is handed to the crate (which would abort the test process if the guard let a huge
//! claim through).
//!
//! To show that this cross-check can fail, `broken_shapes_are_caught` breaks the shapes on
//! purpose (one field at a time: dropped, widened, made nullable, swapped with its neighbour,
//! present one version too early or too late; an api's first flexible version moved; a tag
//! renumbered) and requires the cross-check to catch every one of those mistakes.
//!
//! Everything is driven by a small seeded PRNG, so a failure names the seed that reproduces it.

#[path = "../src/protocol/guard/mod.rs"]
mod guard;

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use guard::{
    Field, GuardError, MAX, NEVER, RESPONSE_SHAPES, SHAPES, Shape, Ty, check_request_body, check_response_body, is_known, request_versions,
    response_versions, walk_body,
};
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};

/// Valid bodies generated and round-tripped per (api, version).
const CASES_PER_VERSION: u64 = 1000;
/// Of those, how many are also checked at every truncation length.
const TRUNCATED_PER_VERSION: u64 = 25;
/// Bit-flipped variants per (api, version).
const MUTATIONS_PER_VERSION: u64 = 1000;
/// Seeds tried per version before a deliberately broken shape counts as not caught.
const SEEDS_PER_BROKEN_SHAPE: u64 = 64;

// ---------------------------------------------------------------------------------------------
// Deterministic PRNG
// ---------------------------------------------------------------------------------------------

/// xorshift64*, seeded through splitmix64 so that nearby seeds give unrelated streams.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `1/n`.
    fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    fn bytes(&mut self, out: &mut Vec<u8>, n: usize) {
        for _ in 0..n {
            out.push(self.next() as u8);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Requests and responses
// ---------------------------------------------------------------------------------------------

/// Which side of the protocol a shape table describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Request,
    Response,
}

const KINDS: [Kind; 2] = [Kind::Request, Kind::Response];

impl Kind {
    fn shapes(self) -> &'static [Shape] {
        match self {
            Kind::Request => SHAPES,
            Kind::Response => RESPONSE_SHAPES,
        }
    }

    /// The guard's public entry point for this kind: Ok(bytes walked).
    fn check(self, api_key: i16, version: i16, body: &[u8]) -> Result<usize, GuardError> {
        match self {
            Kind::Request => check_request_body(api_key, version, body),
            Kind::Response => check_response_body(api_key, version, body).map(|w| w.consumed),
        }
    }

    /// The versions of `api_key` the guard walks as this kind.
    fn versions(self, api_key: i16) -> Option<(i16, i16)> {
        match self {
            Kind::Request => request_versions(api_key),
            Kind::Response => response_versions(api_key),
        }
    }
}

/// Every shape of both kinds.
fn all_shapes() -> impl Iterator<Item = (Kind, &'static Shape)> {
    KINDS.into_iter().flat_map(|kind| kind.shapes().iter().map(move |s| (kind, s)))
}

/// A message the crate decoded: a request or a response.
enum Decoded {
    Request(RequestKind),
    Response(ResponseKind),
}

impl Decoded {
    fn encode(&self, version: i16) -> Result<BytesMut, String> {
        let mut out = BytesMut::new();
        match self {
            Decoded::Request(m) => m.encode(&mut out, version),
            Decoded::Response(m) => m.encode(&mut out, version),
        }
        .map_err(|e| format!("{e:#}"))?;
        Ok(out)
    }

    fn debug(&self) -> String {
        match self {
            Decoded::Request(m) => format!("{m:?}"),
            Decoded::Response(m) => format!("{m:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Shape-driven encoder
// ---------------------------------------------------------------------------------------------

fn put_uvarint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Characters strings are built from: ASCII, and 2-, 3- and 4-byte UTF-8 sequences.
const CHARS: &[char] = &['a', 'Z', '0', '-', '_', '.', ' ', 'é', 'ß', '日', '本', '😀'];

struct Encoder<'r> {
    rng: &'r mut Rng,
    version: i16,
    flexible: bool,
    /// Set once an unknown tagged field has been written.
    wrote_unknown_tag: bool,
    /// Set once a tag has been written that the shape knows only at other versions.
    wrote_foreign_tag: bool,
    /// Set once a known tagged field has been written.
    wrote_known_tag: bool,
    /// Set once a known tagged field has been written as null.
    wrote_null_tag: bool,
}

impl Encoder<'_> {
    /// A length/count prefix (`None` = null): compact varint in flexible versions, else
    /// `int16` for strings and `int32` for bytes and arrays.
    fn put_length(&mut self, out: &mut Vec<u8>, len: Option<usize>, short: bool) {
        if self.flexible {
            put_uvarint(out, len.map_or(0, |n| n as u32 + 1));
        } else if short {
            out.extend_from_slice(&len.map_or(-1, |n| n as i16).to_be_bytes());
        } else {
            out.extend_from_slice(&len.map_or(-1, |n| n as i32).to_be_bytes());
        }
    }

    /// Whether a nullable value comes out null this time. `non_default` values (known tagged
    /// fields, which the crate only re-encodes when they differ from their default) rarely are,
    /// as null may be the default; such a body is noted, and only checked for decoding.
    fn null(&mut self, nullable: bool, non_default: bool) -> bool {
        if !nullable {
            false
        } else if non_default {
            let null = self.rng.one_in(8);
            self.wrote_null_tag |= null;
            null
        } else {
            self.rng.one_in(5)
        }
    }

    /// A count or length in `0..=max`; at least 1 for `non_default` values (an empty string,
    /// bytes or array may be a field's default).
    fn len(&mut self, max: u64, non_default: bool) -> usize {
        if non_default { 1 + self.rng.below(max) as usize } else { self.rng.below(max + 1) as usize }
    }

    fn value(&mut self, out: &mut Vec<u8>, ty: &Ty, non_default: bool) {
        match ty {
            // Strictly 0/1: the crate re-encodes any non-zero byte as 1. A tagged bool is
            // assumed to default to false.
            Ty::Bool => out.push(u8::from(non_default || self.rng.one_in(2))),
            Ty::Int8 => self.fixed(out, 1, non_default),
            Ty::Int16 => self.fixed(out, 2, non_default),
            Ty::Int32 => self.fixed(out, 4, non_default),
            Ty::Int64 | Ty::Float64 => self.fixed(out, 8, non_default),
            Ty::Uuid => self.fixed(out, 16, non_default),
            Ty::Str | Ty::NullableStr => {
                if self.null(matches!(ty, Ty::NullableStr), non_default) {
                    self.put_length(out, None, true);
                } else {
                    let mut s = String::new();
                    for _ in 0..self.len(6, non_default) {
                        s.push(CHARS[self.rng.below(CHARS.len() as u64) as usize]);
                    }
                    self.put_length(out, Some(s.len()), true);
                    out.extend_from_slice(s.as_bytes());
                }
            }
            Ty::Bytes | Ty::NullableBytes => {
                if self.null(matches!(ty, Ty::NullableBytes), non_default) {
                    self.put_length(out, None, false);
                } else {
                    let n = self.len(12, non_default);
                    self.put_length(out, Some(n), false);
                    self.rng.bytes(out, n);
                }
            }
            Ty::Array(elem) | Ty::NullableArray(elem) => {
                if self.null(matches!(ty, Ty::NullableArray(_)), non_default) {
                    self.put_length(out, None, false);
                } else {
                    let n = self.len(3, non_default);
                    self.put_length(out, Some(n), false);
                    for _ in 0..n {
                        self.value(out, elem, false);
                    }
                }
            }
            Ty::Struct(fields) => self.fields(out, fields),
            // The crate reads any marker but 1 as null and writes null as -1.
            Ty::NullableStruct(fields) => {
                if self.null(true, non_default) {
                    out.push(0xff);
                } else {
                    out.push(1);
                    self.fields(out, fields);
                }
            }
        }
    }

    /// `n` random bytes; for `non_default` values (known tagged fields) neither all zero nor
    /// all ones, the defaults of fixed-width fields (0, -1, the nil uuid).
    fn fixed(&mut self, out: &mut Vec<u8>, n: usize, non_default: bool) {
        let start = out.len();
        loop {
            self.rng.bytes(out, n);
            let value = &out[start..];
            if !non_default || !(value.iter().all(|&b| b == 0) || value.iter().all(|&b| b == 0xff)) {
                return;
            }
            out.truncate(start);
        }
    }

    fn fields(&mut self, out: &mut Vec<u8>, fields: &[Field]) {
        for f in fields {
            if f.tag.is_none() && f.present_in(self.version) {
                self.value(out, &f.ty, false);
            }
        }
        if self.flexible {
            self.tagged_fields(out, fields);
        }
    }

    /// Some of the known tagged fields (ascending tag order, as Kafka requires) and sometimes
    /// one unknown tag: a number the struct's shape uses at no version. Usually that is above
    /// every known tag (the crate keeps it as unknown and re-encodes it last; it would drop an
    /// unknown tag below its highest known one), often the first free number, so that a tag
    /// missing from our shape is soon hit; a gap below the highest known tag (none of the
    /// current shapes has one) is only there if our shape lacks a tag the crate knows, and is
    /// then tried first. Now and then the extra tag is instead one that the shape knows at other
    /// versions only, which the crate must refuse ("not valid for version").
    fn tagged_fields(&mut self, out: &mut Vec<u8>, fields: &[Field]) {
        let mut known: Vec<&Field> = fields.iter().filter(|f| f.tag.is_some() && f.present_in(self.version)).collect();
        known.sort_by_key(|f| f.tag);
        known.retain(|_| self.rng.one_in(2));
        let unknown = self.rng.one_in(4).then(|| {
            let first_free = fields.iter().filter_map(|f| f.tag).max().map_or(0, |t| t + 1);
            let gap = (0..first_free).find(|t| fields.iter().all(|f| f.tag != Some(*t)));
            let tag = match gap {
                Some(gap) if self.rng.one_in(2) => gap,
                _ if self.rng.one_in(2) => first_free,
                _ => first_free + self.rng.below(300) as u32,
            };
            let mut payload = Vec::new();
            let n = self.rng.below(6) as usize;
            self.rng.bytes(&mut payload, n);
            (tag, payload)
        });
        let foreign: Vec<u32> = fields.iter().filter(|f| !f.present_in(self.version)).filter_map(|f| f.tag).collect();
        let unknown = match unknown {
            Some((_, payload)) if !foreign.is_empty() && self.rng.one_in(3) => {
                self.wrote_foreign_tag = true;
                Some((foreign[self.rng.below(foreign.len() as u64) as usize], payload))
            }
            Some((tag, payload)) => {
                self.wrote_unknown_tag = true;
                Some((tag, payload))
            }
            None => None,
        };
        put_uvarint(out, (known.len() + usize::from(unknown.is_some())) as u32);
        for f in known {
            self.wrote_known_tag = true;
            let mut payload = Vec::new();
            self.value(&mut payload, &f.ty, true);
            put_uvarint(out, f.tag.unwrap_or_default());
            put_uvarint(out, payload.len() as u32);
            out.extend_from_slice(&payload);
        }
        if let Some((tag, payload)) = unknown {
            put_uvarint(out, tag);
            put_uvarint(out, payload.len() as u32);
            out.extend_from_slice(&payload);
        }
    }
}

/// A random valid body of `shape` at `version`, from `seed`.
fn generate(shape: &Shape, version: i16, seed: u64) -> Vec<u8> {
    generate_noting_tags(shape, version, seed).body
}

struct Generated {
    body: Vec<u8>,
    /// The body holds an unknown tagged field.
    unknown_tag: bool,
    /// The body holds a tag that the shape knows at other versions only.
    foreign_tag: bool,
    /// The body holds a known tagged field.
    known_tag: bool,
    /// The body holds a known tagged field whose value is null (perhaps its default, which the
    /// crate would not re-encode).
    null_tag: bool,
}

/// [`generate`], also saying what unusual tags the body holds.
fn generate_noting_tags(shape: &Shape, version: i16, seed: u64) -> Generated {
    let mut rng = Rng::new(seed ^ ((shape.api_key as u64) << 48) ^ ((version as u64) << 32));
    let mut enc = Encoder {
        rng: &mut rng,
        version,
        flexible: version >= shape.flexible_from,
        wrote_unknown_tag: false,
        wrote_foreign_tag: false,
        wrote_known_tag: false,
        wrote_null_tag: false,
    };
    let mut body = Vec::new();
    enc.fields(&mut body, shape.body);
    Generated {
        body,
        unknown_tag: enc.wrote_unknown_tag,
        foreign_tag: enc.wrote_foreign_tag,
        known_tag: enc.wrote_known_tag,
        null_tag: enc.wrote_null_tag,
    }
}

fn versions(shape: &Shape) -> impl Iterator<Item = i16> {
    shape.min_version..=shape.max_version
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" ")
}

fn api_key(shape: &Shape) -> ApiKey {
    ApiKey::try_from(shape.api_key).unwrap_or_else(|()| panic!("{shape:?}: unknown to the crate"))
}

/// Decodes with the crate; Ok((message, bytes left over)).
fn crate_decode(kind: Kind, key: ApiKey, version: i16, body: &[u8]) -> Result<(Decoded, usize), String> {
    let mut bytes = Bytes::copy_from_slice(body);
    let msg = match kind {
        Kind::Request => RequestKind::decode(key, &mut bytes, version).map(Decoded::Request),
        Kind::Response => ResponseKind::decode(key, &mut bytes, version).map(Decoded::Response),
    }
    .map_err(|e| format!("{e:#}"))?;
    Ok((msg, bytes.len()))
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/// The cross-check of one generated body: `None` if (1) the guard walking `shape` accepts it
/// whole, (2) the crate decodes it (as a `kind`) leaving nothing, sees no unknown tagged field
/// unless one was written, and (3) re-encodes it to the same bytes; otherwise what went wrong.
/// A body holding a tag the shape knows at other versions only must instead be refused by the
/// crate as "not valid for version". A body holding a null tagged value must be decoded, but
/// need not re-encode the same (a null tagged value may be the field's default, left out).
fn cross_check(kind: Kind, shape: &Shape, version: i16, seed: u64) -> Option<String> {
    let Generated { body, unknown_tag, foreign_tag, null_tag, .. } = generate_noting_tags(shape, version, seed);
    let problem = match walk_body(shape, version, &body) {
        Err(e) => format!("guard rejects it: {e}"),
        Ok(n) if n != body.len() => format!("guard consumed {n} of {} bytes", body.len()),
        Ok(_) if foreign_tag => match crate_decode(kind, api_key(shape), version, &body) {
            Err(e) if e.contains("is not valid for version") => return None,
            Err(e) => format!("crate fails on a tag the shape has at other versions only: {e}"),
            Ok(_) => "crate accepts a tag the shape has at other versions only".into(),
        },
        Ok(_) => match crate_decode(kind, api_key(shape), version, &body) {
            Err(e) => format!("crate rejects it: {e}"),
            Ok((_, left)) if left != 0 => format!("crate leaves {left} bytes"),
            Ok(_) if null_tag => return None,
            Ok((msg, _)) => match msg.encode(version) {
                Err(e) => format!("crate cannot re-encode it: {e}"),
                Ok(out) if out[..] != body[..] => {
                    format!("re-encoded differently:\n    {}", hex(&out))
                }
                Ok(_) if !unknown_tag && has_unknown_tags(&msg) => {
                    "crate saw an unknown tagged field where the shape has a known one".into()
                }
                Ok(_) => return None,
            },
        },
    };
    Some(format!("{kind:?} {shape:?} v{version} seed {seed}: {problem}\n    body {}", hex(&body)))
}

/// Whether any struct of the decoded message kept an unknown tagged field.
fn has_unknown_tags(msg: &Decoded) -> bool {
    let text = msg.debug();
    text.matches("unknown_tagged_fields: {").count() != text.matches("unknown_tagged_fields: {}").count()
}

/// (1)-(3) for every (api, version) pair and many seeds.
#[test]
fn generated_bodies_pass_guard_and_round_trip_through_the_crate() {
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut pairs = 0;
    let mut cases = 0;
    let (mut known, mut unknown, mut foreign) = (0, 0, 0);
    for (kind, shape) in all_shapes() {
        for version in versions(shape) {
            pairs += 1;
            let before = failures.len();
            for seed in 0..CASES_PER_VERSION {
                cases += 1;
                let g = generate_noting_tags(shape, version, seed);
                known += u32::from(g.known_tag);
                unknown += u32::from(g.unknown_tag);
                foreign += u32::from(g.foreign_tag);
                if let Some(problem) = cross_check(kind, shape, version, seed)
                    && failures.len() - before < 2
                {
                    failures.push(problem);
                }
            }
            // The table's shape is the one check_request_body / check_response_body uses.
            let body = generate(shape, version, 0);
            assert_eq!(kind.check(shape.api_key, version, &body), Ok(body.len()));
        }
    }
    println!(
        "{pairs} (api, version) pairs, {cases} generated bodies ({known} with known tagged fields, \
         {unknown} with unknown tags, {foreign} with tags of other versions), {:?}",
        started.elapsed()
    );
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// (4) Every truncation of a valid body is rejected, or is itself a valid (shorter) body that
/// the crate decodes to the same length.
#[test]
fn truncated_bodies_are_rejected_or_valid() {
    for (kind, shape) in all_shapes() {
        let key = api_key(shape);
        for version in versions(shape) {
            for seed in 0..TRUNCATED_PER_VERSION {
                let body = generate(shape, version, seed);
                for cut in 0..body.len() {
                    let prefix = &body[..cut];
                    match kind.check(shape.api_key, version, prefix) {
                        Err(GuardError::UnknownShape) => {
                            panic!("{kind:?} {shape:?} v{version}: no shape")
                        }
                        Err(_) => {}
                        Ok(n) => {
                            assert!(n <= cut, "{kind:?} {shape:?} v{version} seed {seed}: consumed {n} > {cut}");
                            match crate_decode(kind, key, version, prefix) {
                                Ok((_, left)) => assert_eq!(
                                    cut - left,
                                    n,
                                    "{kind:?} {shape:?} v{version} seed {seed} cut {cut}: guard and crate disagree on the length"
                                ),
                                Err(e) => panic!(
                                    "{kind:?} {shape:?} v{version} seed {seed} cut {cut}: guard accepts a prefix the crate rejects: {e}"
                                ),
                            }
                        }
                    }
                }
            }
        }
    }
}

/// (5) Hand-built hostile bodies: huge array counts, over-long varints, negative lengths.
#[test]
fn hostile_lengths_are_rejected() {
    // Metadata v1: topics count i32::MAX, then a few bytes.
    let body = [0x7f, 0xff, 0xff, 0xff, 0, 1, b'a', 0];
    assert_eq!(check_request_body(3, 1, &body), Err(GuardError::LengthExceedsFrame { at: 0, claimed: i32::MAX as u64, remaining: 4 }));
    // Metadata v9 (flexible): compact count varint 0x8000_0000 = i32::MAX topics + 1.
    let body = [0x80, 0x80, 0x80, 0x80, 0x08, 0, 0, 0];
    assert_eq!(check_request_body(3, 9, &body), Err(GuardError::LengthExceedsFrame { at: 0, claimed: i32::MAX as u64, remaining: 3 }));
    // The largest compact count there is (u32::MAX - 1 elements).
    let body = [0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0];
    assert!(matches!(check_request_body(3, 12, &body), Err(GuardError::LengthExceedsFrame { claimed: 0xffff_fffe, .. })));
    // Two topics claimed, each needs at least 2 bytes (v1: nullable string length): 3 left.
    let body = [0, 0, 0, 2, 0, 0, 0];
    assert!(matches!(check_request_body(3, 1, &body), Err(GuardError::LengthExceedsFrame { at: 0, claimed: 2, remaining: 3 })));
    // A varint longer than 5 bytes, and one that overflows 32 bits.
    let body = [0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0];
    assert!(matches!(check_request_body(3, 9, &body), Err(GuardError::Malformed { at: 0, .. })));
    let body = [0x80, 0x80, 0x80, 0x80, 0x10, 0, 0];
    assert!(matches!(check_request_body(3, 9, &body), Err(GuardError::Malformed { at: 0, .. })));
    // Negative counts: -2 is malformed anywhere; -1 is null, only for a nullable array.
    assert!(matches!(check_request_body(3, 1, &[0xff, 0xff, 0xff, 0xfe]), Err(GuardError::Malformed { at: 0, .. })));
    assert_eq!(check_request_body(3, 1, &[0xff, 0xff, 0xff, 0xff]), Ok(4));
    // DescribeGroups v0: groups is not nullable.
    assert!(matches!(check_request_body(15, 0, &[0xff, 0xff, 0xff, 0xff]), Err(GuardError::Malformed { at: 0, .. })));
    // SaslHandshake v1: mechanism string claims 0x7fff bytes, 2 present.
    assert_eq!(
        check_request_body(17, 1, &[0x7f, 0xff, b'P', b'L']),
        Err(GuardError::LengthExceedsFrame { at: 0, claimed: 0x7fff, remaining: 2 })
    );
    // JoinGroup v0 protocol metadata (bytes) claiming i32::MAX.
    let mut body = Vec::new();
    for s in [&b"g"[..], b"", b"consumer"] {
        body.extend_from_slice(&(s.len() as i16).to_be_bytes());
        body.extend_from_slice(s);
        if s == b"g" {
            body.extend_from_slice(&30_000i32.to_be_bytes()); // session timeout
        }
    }
    body.extend_from_slice(&1i32.to_be_bytes()); // one protocol
    body.extend_from_slice(&[0, 5, b'r', b'a', b'n', b'g', b'e']);
    let at = body.len();
    body.extend_from_slice(&i32::MAX.to_be_bytes());
    body.extend_from_slice(&[1, 2, 3]);
    assert_eq!(check_request_body(11, 0, &body), Err(GuardError::LengthExceedsFrame { at, claimed: i32::MAX as u64, remaining: 3 }));
    // Tagged-field section claiming more entries than bytes (DescribeCluster v0 is flexible).
    assert!(matches!(check_request_body(60, 0, &[1, 0x80, 0x80, 0x80, 0x80, 0x01, 0]), Err(GuardError::LengthExceedsFrame { at: 1, .. })));
    // A tagged field whose size claims more than is left.
    assert!(matches!(
        check_request_body(60, 0, &[1, 1, 9, 0x7f, 0]),
        Err(GuardError::LengthExceedsFrame { at: 3, claimed: 0x7f, remaining: 1 })
    ));
    // Fetch v12 with known tag 0 (cluster_id, a compact nullable string) whose content does
    // not fill its declared size exactly: the crate would decode the content and ignore the size.
    let mut fetch = Vec::new();
    fetch.extend_from_slice(&[0; 4 * 4 + 1 + 4 + 4]); // replica id .. session epoch
    fetch.extend_from_slice(&[1, 1, 1]); // no topics, no forgotten topics, rack ""
    let tags_at = fetch.len();
    let with_tag = |tag: &[u8]| [&fetch[..], &[1, 0], tag].concat();
    assert_eq!(check_request_body(1, 12, &with_tag(&[4, 4, b'a', b'b', b'c'])), Ok(tags_at + 7));
    assert_eq!(
        check_request_body(1, 12, &with_tag(&[2, 4, b'a', b'b', b'c'])),
        Err(GuardError::LengthExceedsFrame { at: tags_at + 3, claimed: 3, remaining: 1 })
    );
    assert_eq!(
        check_request_body(1, 12, &with_tag(&[5, 4, b'a', b'b', b'c', 0])),
        Err(GuardError::Malformed { at: tags_at + 2, what: "tagged field size does not match its content" })
    );
    // The same tag at v12 but with an unknown tag number is skipped by its size.
    let unknown = [&fetch[..], &[1, 7, 3, 0xff, 0xff, 0xff]].concat();
    assert_eq!(check_request_body(1, 12, &unknown), Ok(unknown.len()));
    // Truncated fixed-width field.
    assert_eq!(check_request_body(12, 0, &[0, 1, b'g', 0, 0]), Err(GuardError::Truncated { at: 3 }));
}

#[test]
fn known_shapes_and_versions() {
    for kind in KINDS {
        let shapes = kind.shapes();
        let pairs: usize = shapes.iter().map(|s| versions(s).count()).sum();
        println!("{kind:?}: {} apis, {pairs} (api, version) pairs", shapes.len());
        let mut keys = std::collections::BTreeSet::new();
        for shape in shapes {
            assert!(keys.insert(shape.api_key), "{kind:?} {shape:?}: twice");
            assert_eq!(kind.versions(shape.api_key), Some((shape.min_version, shape.max_version)));
            for version in versions(shape) {
                assert_ne!(kind.check(shape.api_key, version, &[]), Err(GuardError::UnknownShape));
                if kind == Kind::Request {
                    assert!(is_known(shape.api_key, version));
                }
            }
            for outside in [shape.min_version - 1, shape.max_version + 1] {
                assert_eq!(kind.check(shape.api_key, outside, &[]), Err(GuardError::UnknownShape));
            }
            assert!(shape.body.iter().all(|f| f.min <= f.max), "{shape:?}");
            // Never wider than the api's versions as the crate knows them ...
            let key = api_key(shape);
            let valid = key.valid_versions();
            assert!(
                valid.min <= shape.min_version && shape.max_version <= valid.max,
                "{kind:?} {shape:?}: wider than the crate's {valid:?}"
            );
            // ... the crate decodes both ends, and the shape covers all it decodes: one version
            // either side, the crate refuses the message whatever the body.
            for version in [shape.min_version, shape.max_version] {
                let body = generate(shape, version, 0);
                assert!(crate_decode(kind, key, version, &body).is_ok(), "{kind:?} {shape:?} v{version}");
            }
            for (inside, outside) in [(shape.min_version, shape.min_version - 1), (shape.max_version, shape.max_version + 1)] {
                let body = generate(shape, inside, 0);
                match crate_decode(kind, key, outside, &body) {
                    Err(e) if e.contains("version not supported") => {}
                    Err(e) => panic!("{kind:?} {shape:?} v{outside}: {e}"),
                    Ok(_) => panic!("{kind:?} {shape:?}: the crate also decodes v{outside}"),
                }
            }
        }
    }
    // The guard walks versions corral does not serve in broker mode.
    assert!(is_known(3, 13));
    assert!(is_known(0, 13));
    assert!(is_known(1, 18));
    assert!(!is_known(1000, 0));
    assert!(!is_known(-1, 0));
    assert_eq!(response_versions(8), Some((2, 10)));
    assert_eq!(request_versions(8), Some((2, 9)));
    assert_eq!(response_versions(1000), None);
    // Everything broker mode serves, the guard walks.
    for (key, min, max) in corral::protocol::SUPPORTED {
        let walked = request_versions(*key as i16);
        assert!(walked.is_some_and(|(lo, hi)| lo <= *min && *max <= hi), "{key:?} served at {min}..={max}, walked at {walked:?}");
    }
}

/// What the guard's errors say is what a user reads in corral's log when a connection is
/// closed for a malformed request (`DecodeError::Malformed` carries the text): where in the
/// body the bad bytes are and what is wrong with them. Each is checked word for word, on an
/// error the guard gives for a real body.
#[test]
fn guard_errors_say_where_and_what() {
    let said = |api_key: i16, version: i16, body: &[u8]| -> String {
        let err: Box<dyn std::error::Error> = Box::new(check_request_body(api_key, version, body).expect_err("a rejected body"));
        err.to_string()
    };
    // Metadata v1: a topics count of i32::MAX with four bytes after it.
    assert_eq!(
        said(3, 1, &[0x7f, 0xff, 0xff, 0xff, 0, 1, b'a', 0]),
        "length 2147483647 at offset 0 claims more than the 4 bytes left in the body"
    );
    // JoinGroup v0: protocol metadata (bytes) claiming i32::MAX, 3 bytes present, at offset 30.
    let mut join = Vec::new();
    join.extend_from_slice(&[0, 1, b'g']); // group id
    join.extend_from_slice(&30_000i32.to_be_bytes()); // session timeout
    join.extend_from_slice(&[0, 0]); // member id ""
    join.extend_from_slice(&[0, 8]);
    join.extend_from_slice(b"consumer"); // protocol type
    join.extend_from_slice(&1i32.to_be_bytes()); // one protocol
    join.extend_from_slice(&[0, 5, b'r', b'a', b'n', b'g', b'e']);
    assert_eq!(join.len(), 30);
    join.extend_from_slice(&i32::MAX.to_be_bytes());
    join.extend_from_slice(&[1, 2, 3]);
    assert_eq!(said(11, 0, &join), "length 2147483647 at offset 30 claims more than the 3 bytes left in the body");
    // Heartbeat v0: the group id "g" and then half a generation id.
    assert_eq!(said(12, 0, &[0, 1, b'g', 0, 0]), "body ends inside a field at offset 3");
    // DescribeGroups v0: a null groups array, which is not nullable.
    assert_eq!(said(15, 0, &[0xff, 0xff, 0xff, 0xff]), "malformed body at offset 0: null in a field that is not nullable");
    // Metadata v9 (flexible): a six-byte varint count.
    assert_eq!(said(3, 9, &[0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0]), "malformed body at offset 0: varint longer than 5 bytes");
    assert_eq!(said(1000, 0, &[]), "no shape for this api key and version");
}

/// A response body reports the tags of its own tagged-field section, and only those: Fetch
/// v16's `node_endpoints` (tag 0) when present, not when absent, and never the tag 0 of a
/// partition (`diverging_epoch`) nested inside it.
#[test]
fn response_walk_reports_top_level_tags() {
    use kafka_protocol::messages::BrokerId;
    use kafka_protocol::messages::fetch_response::{
        EpochEndOffset, FetchResponse, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint, PartitionData,
    };
    use kafka_protocol::protocol::StrBytes;

    let partition = PartitionData::default()
        .with_partition_index(3)
        .with_diverging_epoch(EpochEndOffset::default().with_epoch(4).with_end_offset(40))
        .with_current_leader(LeaderIdAndEpoch::default().with_leader_id(BrokerId(2)).with_leader_epoch(5))
        .with_records(Some(Bytes::from_static(b"not really a batch")));
    let without = FetchResponse::default()
        .with_responses(vec![FetchableTopicResponse::default().with_topic_id(uuid::Uuid::from_u128(7)).with_partitions(vec![partition])]);
    let with = without.clone().with_node_endpoints(vec![
        NodeEndpoint::default().with_node_id(BrokerId(2)).with_host(StrBytes::from_static_str("broker-2")).with_port(9092),
    ]);
    let encode = |r: &FetchResponse, version: i16| {
        let mut out = BytesMut::new();
        ResponseKind::Fetch(r.clone()).encode(&mut out, version).expect("encode");
        out
    };

    let body = encode(&with, 16);
    let walked = check_response_body(1, 16, &body).expect("walks");
    assert_eq!(walked.consumed, body.len());
    assert!(walked.has_top_level_tag(0));
    assert_eq!(walked.top_level_tags, 1);

    let body = encode(&without, 16);
    let walked = check_response_body(1, 16, &body).expect("walks");
    assert_eq!(walked.consumed, body.len());
    assert!(!walked.has_top_level_tag(0), "a partition's tag 0 is not the body's");
    assert_eq!(walked.top_level_tags, 0);

    // An unknown top-level tag is reported too; one past 63 is not (and does no harm).
    let mut odd = without.clone();
    odd.unknown_tagged_fields.insert(5, Bytes::from_static(&[1, 2]));
    odd.unknown_tagged_fields.insert(70, Bytes::new());
    let body = encode(&odd, 16);
    let walked = check_response_body(1, 16, &body).expect("walks");
    assert_eq!(walked.top_level_tags, 1 << 5);
    assert!(walked.has_top_level_tag(5) && !walked.has_top_level_tag(70));

    // Non-flexible versions have no tagged fields at all.
    let body = encode(&without, 11);
    assert_eq!(check_response_body(1, 11, &body).map(|w| w.top_level_tags), Ok(0));
}

/// Hand-built hostile response bodies: what an upstream broker (or something pretending to be
/// one) could send the proxy.
#[test]
fn hostile_response_lengths_are_rejected() {
    // Metadata v1: brokers count i32::MAX.
    let body = [0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0];
    assert_eq!(check_response_body(3, 1, &body), Err(GuardError::LengthExceedsFrame { at: 0, claimed: i32::MAX as u64, remaining: 4 }));
    // Fetch v12: one topic, one partition whose records claim (compact) 2^31 bytes.
    let mut fetch = Vec::new();
    fetch.extend_from_slice(&[0; 4 + 2 + 4]); // throttle, error, session
    fetch.extend_from_slice(&[2, 2, b't', 2]); // 1 topic "t", 1 partition
    fetch.extend_from_slice(&[0; 4 + 2 + 8 + 8 + 8]); // index .. log start offset
    fetch.extend_from_slice(&[1]); // no aborted transactions
    fetch.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]); // preferred read replica
    let at = fetch.len();
    fetch.extend_from_slice(&[0x81, 0x80, 0x80, 0x80, 0x08, 0, 0, 0]);
    assert_eq!(check_response_body(1, 12, &fetch), Err(GuardError::LengthExceedsFrame { at, claimed: 0x8000_0000, remaining: 3 }));
    // Produce v10: a partition's current_leader (tag 0) whose size claims more than is left.
    let mut produce = vec![2, 2, b't', 2]; // 1 topic "t", 1 partition
    produce.extend_from_slice(&[0; 4 + 2 + 8 + 8 + 8]); // index .. log start offset
    produce.extend_from_slice(&[1, 0]); // no record errors, null error message
    produce.extend_from_slice(&[1, 0, 0x7f, 0, 0, 0, 1]);
    assert!(matches!(check_response_body(0, 10, &produce), Err(GuardError::LengthExceedsFrame { claimed: 0x7f, .. })));
    // ApiVersions v3 with a tagged-field count no body could hold.
    let body = [0, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f];
    assert!(matches!(check_response_body(18, 3, &body), Err(GuardError::LengthExceedsFrame { at: 7, .. })));
    assert_eq!(check_response_body(18, 5, &[]), Err(GuardError::UnknownShape));
}

/// (6) Random bit flips and byte overwrites never panic the guard; whatever it accepts goes to
/// the crate. When the crate then decodes successfully, it must have read exactly what the
/// guard walked; when it fails, the failure must be a content check (UTF-8, a known tag at a
/// version that does not have it), never a structural one the guard should have caught.
#[test]
fn mutated_bodies_never_get_past_the_guard_into_trouble() {
    let mut accepted = 0u64;
    let mut decoded = 0u64;
    let mut total = 0u64;
    let mut crate_errors: BTreeMap<String, u64> = BTreeMap::new();
    for (kind, shape) in all_shapes() {
        let key = api_key(shape);
        for version in versions(shape) {
            for seed in 0..MUTATIONS_PER_VERSION {
                let mut body = generate(shape, version, seed);
                if body.is_empty() {
                    continue;
                }
                let mut rng = Rng::new(seed.wrapping_mul(31).wrapping_add(7));
                for _ in 0..=rng.below(3) {
                    let i = rng.below(body.len() as u64) as usize;
                    if rng.one_in(3) {
                        body[i] = rng.next() as u8;
                    } else {
                        body[i] ^= 1 << rng.below(8);
                    }
                }
                total += 1;
                let Ok(n) = kind.check(shape.api_key, version, &body) else {
                    continue;
                };
                accepted += 1;
                match crate_decode(kind, key, version, &body) {
                    Ok((_, left)) => {
                        decoded += 1;
                        assert_eq!(
                            body.len() - left,
                            n,
                            "{kind:?} {shape:?} v{version} seed {seed}: guard walked {n} bytes, crate read {}\n    body {}",
                            body.len() - left,
                            hex(&body)
                        );
                    }
                    Err(e) => {
                        let root = e.rsplit(": ").next().unwrap_or(&e).to_string();
                        let content = root.contains("utf-8") || root.contains("is not valid for version");
                        assert!(
                            content,
                            "{kind:?} {shape:?} v{version} seed {seed}: guard accepted, crate failed structurally: {e}\n    body {}",
                            hex(&body)
                        );
                        let kind: String = root.chars().map(|c| if c.is_ascii_digit() { '#' } else { c }).collect();
                        *crate_errors.entry(kind).or_default() += 1;
                    }
                }
            }
        }
    }
    println!("{total} mutated bodies, {accepted} accepted by the guard, {decoded} decoded by the crate");
    for (e, n) in &crate_errors {
        println!("  crate error after guard accepted ({n}x): {e}");
    }
}

// ---------------------------------------------------------------------------------------------
// Can the cross-check fail? Break the shapes on purpose and see that it does.
// ---------------------------------------------------------------------------------------------

/// One deliberate mistake in a shape table.
#[derive(Clone, Copy, Debug)]
enum Mistake {
    /// The field is missing.
    Drop,
    /// A fixed-width field (or array element) one size wider.
    Widen,
    /// A non-nullable string, bytes, array, array element or struct made nullable.
    Nullable,
    /// The field swapped with the next regular field of a different type.
    SwapWithNext,
    /// The field starts one version later / earlier, ends one version earlier / later.
    StartLater,
    StartEarlier,
    EndEarlier,
    EndLater,
    /// A tagged field with the next tag number.
    RenumberTag,
}

const MISTAKES: &[Mistake] = &[
    Mistake::Drop,
    Mistake::Widen,
    Mistake::Nullable,
    Mistake::SwapWithNext,
    Mistake::StartLater,
    Mistake::StartEarlier,
    Mistake::EndEarlier,
    Mistake::EndLater,
    Mistake::RenumberTag,
];

fn leak<T>(value: T) -> &'static T {
    Box::leak(Box::new(value))
}

/// The struct a field's type holds (directly or as array elements), if any.
fn inner_struct(ty: &Ty) -> Option<&'static [Field]> {
    match *ty {
        Ty::Struct(fields) | Ty::NullableStruct(fields) => Some(fields),
        Ty::Array(elem) | Ty::NullableArray(elem) => inner_struct(elem),
        _ => None,
    }
}

/// A copy of `fields` with `edit` applied to the struct at `path` (field indices, each leading
/// into the struct that field's type holds).
fn rebuild(fields: &'static [Field], path: &[usize], edit: &dyn Fn(&mut Vec<Field>) -> bool) -> Option<&'static [Field]> {
    let mut copy = fields.to_vec();
    match path.split_first() {
        None => {
            if !edit(&mut copy) {
                return None;
            }
        }
        Some((&i, rest)) => copy[i].ty = rebuild_ty(&copy[i].ty, rest, edit)?,
    }
    Some(Box::leak(copy.into_boxed_slice()))
}

fn rebuild_ty(ty: &Ty, path: &[usize], edit: &dyn Fn(&mut Vec<Field>) -> bool) -> Option<Ty> {
    Some(match *ty {
        Ty::Struct(fields) => Ty::Struct(rebuild(fields, path, edit)?),
        Ty::NullableStruct(fields) => Ty::NullableStruct(rebuild(fields, path, edit)?),
        Ty::Array(elem) => Ty::Array(leak(rebuild_ty(elem, path, edit)?)),
        Ty::NullableArray(elem) => Ty::NullableArray(leak(rebuild_ty(elem, path, edit)?)),
        _ => unreachable!("path leads through a non-struct"),
    })
}

fn widen(ty: &Ty) -> Option<Ty> {
    Some(match *ty {
        Ty::Bool | Ty::Int8 => Ty::Int16,
        Ty::Int16 => Ty::Int32,
        Ty::Int32 => Ty::Int64,
        Ty::Int64 | Ty::Float64 => Ty::Uuid,
        Ty::Array(elem) => Ty::Array(leak(widen(elem)?)),
        Ty::NullableArray(elem) => Ty::NullableArray(leak(widen(elem)?)),
        _ => return None,
    })
}

fn nullable(ty: &Ty) -> Option<Ty> {
    Some(match *ty {
        Ty::Str => Ty::NullableStr,
        Ty::Bytes => Ty::NullableBytes,
        Ty::Struct(fields) => Ty::NullableStruct(fields),
        Ty::Array(elem) => Ty::NullableArray(elem),
        Ty::NullableArray(elem) => Ty::NullableArray(leak(nullable(elem)?)),
        _ => return None,
    })
}

/// Applies `mistake` to field `i`; false if it does not apply to that field.
fn apply(mistake: Mistake, fields: &mut Vec<Field>, i: usize) -> bool {
    let f = fields[i];
    let changed = match mistake {
        Mistake::Drop => {
            fields.remove(i);
            return true;
        }
        Mistake::SwapWithNext => {
            let Some(j) = (i + 1..fields.len()).find(|&j| fields[j].tag.is_none()) else {
                return false;
            };
            let differ = std::mem::discriminant(&f.ty) != std::mem::discriminant(&fields[j].ty);
            if f.tag.is_some() || !differ {
                return false;
            }
            fields.swap(i, j);
            return true;
        }
        Mistake::Widen => widen(&f.ty).map(|ty| Field { ty, ..f }),
        Mistake::Nullable => nullable(&f.ty).map(|ty| Field { ty, ..f }),
        Mistake::StartLater => (f.min < f.max).then(|| Field { min: f.min + 1, ..f }),
        Mistake::StartEarlier => (f.min > 0).then(|| Field { min: f.min - 1, ..f }),
        Mistake::EndEarlier => (f.max != MAX && f.max > f.min).then(|| Field { max: f.max - 1, ..f }),
        Mistake::EndLater => (f.max != MAX).then(|| Field { max: f.max + 1, ..f }),
        Mistake::RenumberTag => f.tag.map(|t| Field { tag: Some(t + 1), ..f }),
    };
    match changed {
        Some(broken) => {
            fields[i] = broken;
            true
        }
        None => false,
    }
}

/// Versions of `shape` in which the struct at `path` exists.
fn reachable(shape: &Shape, path: &[usize], version: i16) -> bool {
    let mut fields = shape.body;
    for &i in path {
        if !fields[i].present_in(version) || (fields[i].tag.is_some() && version < shape.flexible_from) {
            return false;
        }
        fields = inner_struct(&fields[i].ty).expect("path leads into a struct");
    }
    true
}

fn fixed_width(ty: &Ty) -> bool {
    matches!(ty, Ty::Bool | Ty::Int8 | Ty::Int16 | Ty::Int32 | Ty::Int64 | Ty::Float64 | Ty::Uuid)
}

/// The versions of the shape in which `mistake` on field `i` of the struct at `path` changes
/// the wire format. Swapping two fixed-width fields changes nothing the guard or a random
/// generator can see (the same number of random bytes either way), so it touches no version.
fn touched_versions(shape: &Shape, path: &[usize], fields: &[Field], i: usize, mistake: Mistake) -> Vec<i16> {
    let f = &fields[i];
    let exists = |v: i16| {
        (shape.min_version..=shape.max_version).contains(&v) && reachable(shape, path, v) && (f.tag.is_none() || v >= shape.flexible_from)
    };
    let candidates: Vec<i16> = match mistake {
        Mistake::StartLater => vec![f.min],
        Mistake::StartEarlier => vec![f.min - 1],
        Mistake::EndEarlier => vec![f.max],
        Mistake::EndLater => vec![f.max.saturating_add(1)],
        Mistake::SwapWithNext => {
            let next = (i + 1..fields.len()).find(|&j| fields[j].tag.is_none()).map(|j| &fields[j]);
            match next {
                Some(g) if !(fixed_width(&f.ty) && fixed_width(&g.ty)) => {
                    versions(shape).filter(|&v| f.present_in(v) && g.present_in(v)).collect()
                }
                _ => Vec::new(),
            }
        }
        _ => versions(shape).filter(|&v| f.present_in(v)).collect(),
    };
    candidates.into_iter().filter(|&v| exists(v)).collect()
}

/// First seed/version at which the cross-check catches `shape`, over `versions`.
fn caught(kind: Kind, shape: &Shape, versions: &[i16]) -> Option<String> {
    versions.iter().find_map(|&v| (0..SEEDS_PER_BROKEN_SHAPE).find_map(|seed| cross_check(kind, shape, v, seed)))
}

/// A deliberately broken shape: what was broken, the kind and shape, the versions it changes.
type Broken = (String, Kind, Shape, Vec<i16>);

/// Every deliberate mistake that changes a version the guard walks, in request and response
/// shapes. Always enumerated in the same order.
fn broken_shapes() -> Vec<Broken> {
    let mut out = Vec::new();
    for (kind, shape) in all_shapes() {
        // Every struct of the shape, by path.
        let mut structs: Vec<(Vec<usize>, &'static [Field])> = vec![(Vec::new(), shape.body)];
        let mut k = 0;
        while k < structs.len() {
            let (path, fields) = structs[k].clone();
            for (i, f) in fields.iter().enumerate() {
                if let Some(inner) = inner_struct(&f.ty) {
                    structs.push(([&path[..], &[i]].concat(), inner));
                }
            }
            k += 1;
        }
        for (path, fields) in &structs {
            for i in 0..fields.len() {
                for &mistake in MISTAKES {
                    let edit = |copy: &mut Vec<Field>| apply(mistake, copy, i);
                    let Some(body) = rebuild(shape.body, path, &edit) else {
                        continue;
                    };
                    let touched = touched_versions(shape, path, fields, i, mistake);
                    if !touched.is_empty() {
                        let what = format!("{kind:?} {shape:?}: {mistake:?} of {:?} at path {path:?}", fields[i]);
                        out.push((what, kind, Shape { body, ..*shape }, touched));
                    }
                }
            }
        }
        // The first flexible version one too early or too late.
        let flexible_from = if shape.flexible_from == NEVER { shape.max_version + 1 } else { shape.flexible_from };
        for moved in [flexible_from - 1, flexible_from + 1] {
            let affected = flexible_from.min(moved);
            if (shape.min_version..=shape.max_version).contains(&affected) {
                let what = format!("{kind:?} {shape:?}: flexible from {moved}");
                out.push((what, kind, Shape { flexible_from: moved, ..*shape }, vec![affected]));
            }
        }
    }
    out
}

/// Set in the child processes of [`broken_shapes_are_caught`]: the index to start from.
const CHILD_ENV: &str = "GUARD_BROKEN_SHAPES_FROM";

/// Breaks the shapes on purpose and requires the cross-check to catch each mistake.
///
/// A broken shape can make the guard accept a body that the crate then reads misaligned,
/// claiming a huge count and aborting the process: exactly the failure the guard exists to
/// prevent, and the way the round-trip test would fail with such a shape. So the mistakes are
/// tried in child processes (this test binary, re-run with [`CHILD_ENV`] set); a child that
/// dies while trying a mistake has caught it, and a new child resumes after it.
#[test]
fn broken_shapes_are_caught() {
    if let Ok(from) = std::env::var(CHILD_ENV) {
        let from: usize = from.parse().expect("start index");
        for (idx, (_, kind, shape, versions)) in broken_shapes().iter().enumerate().skip(from) {
            println!("START {idx}");
            let verdict = if caught(*kind, shape, versions).is_some() { "CAUGHT" } else { "MISSED" };
            println!("{verdict} {idx}");
        }
        return;
    }
    let started = Instant::now();
    let all = broken_shapes();
    let (mut caught_by_mismatch, mut caught_by_abort, mut missed) = (0, 0, Vec::new());
    let mut from = 0;
    while from < all.len() {
        let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args(["broken_shapes_are_caught", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, from.to_string())
            .env("RUST_BACKTRACE", "0")
            .stderr(std::process::Stdio::null())
            .output()
            .expect("run child");
        let mut unfinished = None;
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // The harness may have printed "test name ... " in front of the first line.
            let mut words = line.split_whitespace().rev();
            let (Some(idx), Some(verdict)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(idx) = idx.parse::<usize>() else {
                continue;
            };
            match verdict {
                "START" => unfinished = Some(idx),
                "CAUGHT" => {
                    caught_by_mismatch += 1;
                    unfinished = None;
                }
                "MISSED" => {
                    missed.push(all[idx].0.clone());
                    unfinished = None;
                }
                _ => {}
            }
        }
        match unfinished {
            // The child died (the crate aborted) while trying this one.
            Some(idx) if !out.status.success() => {
                caught_by_abort += 1;
                from = idx + 1;
            }
            None if out.status.success() => break,
            _ => panic!("child from {from} ended oddly: {:?}", out.status),
        }
    }
    println!(
        "{} broken shapes: {caught_by_mismatch} caught by a mismatch, {caught_by_abort} by the crate aborting on what the broken guard let through, {} missed, {:?}",
        all.len(),
        missed.len(),
        started.elapsed()
    );
    assert!(missed.is_empty(), "{} broken shapes not caught:\n{}", missed.len(), missed.join("\n"));
}
