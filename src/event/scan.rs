//! The hot path's decoder: one byte scan over a record written the usual way.
//!
//! Connectors and the daemon's own tools write flat objects of plain strings and integers. For
//! those, serde's machinery (a visitor per value, a string buffer per key, the header picked out
//! of the body's way) costs most of the decoding. This scanner reads such a record in one pass,
//! fields in any order, and builds the event directly.
//!
//! It only ever *narrows*: anything it is not sure of — an escape or control character in a
//! string, `null`, a float, a duplicate or unknown field, a field of another event type, a
//! missing field, `contact.updated` and `agent.profile` (rare, and with nested lists) — gives
//! `None`, and the serde decoders decide, so every accepted event and every rejection reason
//! stays theirs. The tests in the parent module check that it agrees with the reference decoder
//! on every variant they build.

use super::{
    AgentState, AgentStateChange, Body, ContactCompleted, ContactCreated, ContactRef, Event,
    Handoff, Millis, OfferAnswer, Skills, WrapupDone,
};

/// The number of event types the scanner builds (see [`event_in`]).
const KINDS: usize = 7;

/// Scans `text` into a new event.
pub(super) fn event(text: &str) -> Option<Event> {
    let mut f = Fields::default();
    let kind = scan(text, &mut f, &mut Order::default())?;
    let mut e = empty(kind);
    f.fill(kind, &mut e);
    Some(e)
}

/// What [`event_in`] keeps from one record to the next: an event per type, and the order in
/// which the last records named their fields.
#[derive(Debug, Default)]
pub(super) struct Slots {
    events: [Option<Event>; KINDS],
    order: Order,
}

/// Scans `text` into the slot of its type, reusing the strings the slot's last event left
/// there: a record of the usual kind then allocates nothing but the rare skill map that changed.
/// A record the scanner does not take leaves every event slot as it was.
pub(super) fn event_in<'s>(text: &str, slots: &'s mut Slots) -> Option<&'s Event> {
    let mut f = Fields::default();
    let kind = scan(text, &mut f, &mut slots.order)?;
    let slot = slots.events[kind as usize].get_or_insert_with(|| empty(kind));
    f.fill(kind, slot);
    Some(slot)
}

/// For each field (and, last, for the start of the object), the field that followed it when
/// the key after it was last read in full. A producer writes its records' fields in one order,
/// so the next key is nearly always the one this predicts, and checking the record for exactly
/// `"name"` costs less than reading a key and looking it up. Only a guess: a key that is not
/// the predicted one is read as before, so what is decoded never depends on it.
#[derive(Debug, Clone)]
struct Order([u8; Field::ALL.len() + 1]);

impl Default for Order {
    fn default() -> Self {
        Order([u8::MAX; Field::ALL.len() + 1])
    }
}

/// Reads the fields of a record the scanner takes into `f` (written in place: the fields are
/// too many to move around), and gives its type.
fn scan<'t>(text: &'t str, f: &mut Fields<'t>, order: &mut Order) -> Option<Kind> {
    let mut s = Scan {
        b: text.as_bytes(),
        s: text,
        i: 0,
    };
    s.fields(f, order)?;
    s.ws();
    if s.i != s.b.len() {
        return None;
    }
    let kind = f.kind?;
    let (required, allowed) = kind.fields();
    if f.seen & required != required || f.seen & !allowed != 0 {
        return None;
    }
    Some(kind)
}

/// An event of type `kind` with every string empty, to be filled.
fn empty(kind: Kind) -> Event {
    let answer = || OfferAnswer {
        assignment_id: String::new(),
        agent_id: String::new(),
        contact_id: String::new(),
        reason: None,
    };
    let body = match kind {
        Kind::ContactCreated => Body::ContactCreated(ContactCreated {
            contact_id: String::new(),
            channel: String::new(),
            customer_id: String::new(),
            language: String::new(),
            queue: None,
            required_skills: Skills::new(),
            preferred_skills: Skills::new(),
            priority: 0,
            preferred_agent: None,
            handoff: None,
        }),
        Kind::ContactAbandoned => Body::ContactAbandoned(ContactRef {
            contact_id: String::new(),
        }),
        Kind::ContactCompleted => Body::ContactCompleted(ContactCompleted {
            contact_id: String::new(),
            agent_id: None,
        }),
        Kind::AgentState => Body::AgentState(AgentStateChange {
            agent_id: String::new(),
            state: AgentState::Offline,
            reason: None,
        }),
        Kind::OfferAccepted => Body::OfferAccepted(answer()),
        Kind::OfferRejected => Body::OfferRejected(answer()),
        Kind::AgentWrapupDone => Body::AgentWrapupDone(WrapupDone {
            agent_id: String::new(),
            contact_id: None,
        }),
    };
    Event {
        id: String::new(),
        tenant: String::new(),
        ts: 0,
        body,
    }
}

/// `dst` becomes `s`, in its own buffer when that is large enough.
fn set(dst: &mut String, s: &str) {
    dst.clear();
    dst.push_str(s);
}

fn set_opt(dst: &mut Option<String>, s: Option<&str>) {
    match (dst.as_mut(), s) {
        (Some(d), Some(s)) => set(d, s),
        (_, s) => *dst = s.map(str::to_owned),
    }
}

/// Declares [`Field`] from one table of (variant, key): the enum, [`Field::ALL`] in declaration
/// order, and the key of each field both ways.
macro_rules! fields {
    ($($variant:ident => $key:literal,)*) => {
        /// The fields of the event types this scanner takes; each has one bit in
        /// [`Fields::seen`].
        #[derive(Clone, Copy)]
        enum Field {
            $($variant,)*
        }

        impl Field {
            /// Every field, in declaration order (`ALL[f as usize] == f`).
            const ALL: [Field; [$($key),*].len()] = [$(Field::$variant),*];

            /// The key that names the field (the inverse of [`Field::of`]).
            const fn name(self) -> &'static str {
                match self {
                    $(Field::$variant => $key,)*
                }
            }

            fn of(key: &str) -> Option<Field> {
                Some(match key {
                    $($key => Field::$variant,)*
                    _ => return None,
                })
            }
        }
    };
}

fields! {
    Id => "id",
    Tenant => "tenant",
    Ts => "ts",
    Type => "type",
    ContactId => "contact_id",
    Channel => "channel",
    CustomerId => "customer_id",
    Language => "language",
    Queue => "queue",
    RequiredSkills => "required_skills",
    PreferredSkills => "preferred_skills",
    Priority => "priority",
    PreferredAgent => "preferred_agent",
    Handoff => "handoff",
    AgentId => "agent_id",
    State => "state",
    Reason => "reason",
    AssignmentId => "assignment_id",
}

impl Field {
    const fn bit(self) -> u32 {
        1 << self as u32
    }
}

/// A field's key in quotes (`"name"`, at most 24 bytes) as three little-endian words, with
/// the masks of the bytes that belong to it.
struct Quoted {
    word: [u64; 3],
    mask: [u64; 3],
    len: usize,
}

const QUOTED: [Quoted; Field::ALL.len()] = {
    let mut table = [const {
        Quoted {
            word: [0; 3],
            mask: [0; 3],
            len: 0,
        }
    }; Field::ALL.len()];
    let mut f = 0;
    while f < Field::ALL.len() {
        let name = Field::ALL[f].name().as_bytes();
        let len = name.len() + 2;
        assert!(len <= 24, "a key longer than the predicted-key check reads");
        let mut i = 0;
        while i < len {
            let byte = if i == 0 || i == len - 1 {
                b'"'
            } else {
                name[i - 1]
            };
            table[f].word[i / 8] |= (byte as u64) << (8 * (i % 8));
            table[f].mask[i / 8] |= 0xff << (8 * (i % 8));
            i += 1;
        }
        table[f].len = len;
        f += 1;
    }
    table
};

const fn mask(fields: &[Field]) -> u32 {
    let mut m = 0;
    let mut i = 0;
    while i < fields.len() {
        m |= fields[i].bit();
        i += 1;
    }
    m
}

const HEADER: u32 = mask(&[Field::Id, Field::Tenant, Field::Ts, Field::Type]);

/// The event types this scanner builds, with the fields each requires and allows; each has a
/// slot of its own in [`event_in`].
#[derive(Clone, Copy)]
enum Kind {
    ContactCreated,
    ContactAbandoned,
    ContactCompleted,
    AgentState,
    OfferAccepted,
    OfferRejected,
    AgentWrapupDone,
}

impl Kind {
    fn of(name: &str) -> Option<Kind> {
        Some(match name {
            "contact.created" => Kind::ContactCreated,
            "contact.abandoned" => Kind::ContactAbandoned,
            "contact.completed" => Kind::ContactCompleted,
            "agent.state" => Kind::AgentState,
            "offer.accepted" => Kind::OfferAccepted,
            "offer.rejected" => Kind::OfferRejected,
            "agent.wrapup_done" => Kind::AgentWrapupDone,
            _ => return None,
        })
    }

    /// (required, allowed) fields, the header included.
    fn fields(self) -> (u32, u32) {
        use Field::*;
        let (required, optional) = match self {
            Kind::ContactCreated => (
                mask(&[ContactId, Channel, CustomerId, Language]),
                mask(&[Queue, RequiredSkills, PreferredSkills])
                    | mask(&[Priority, PreferredAgent, Handoff]),
            ),
            Kind::ContactAbandoned => (mask(&[ContactId]), 0),
            Kind::ContactCompleted => (mask(&[ContactId]), mask(&[AgentId])),
            Kind::AgentState => (mask(&[AgentId, State]), mask(&[Reason])),
            Kind::OfferAccepted | Kind::OfferRejected => {
                (mask(&[AssignmentId, AgentId, ContactId]), mask(&[Reason]))
            }
            Kind::AgentWrapupDone => (mask(&[AgentId]), mask(&[ContactId])),
        };
        (required | HEADER, required | optional | HEADER)
    }
}

/// Every field as read, borrowed from the record where it is a string.
#[derive(Default)]
struct Fields<'a> {
    seen: u32,
    kind: Option<Kind>,
    id: &'a str,
    tenant: &'a str,
    ts: Millis,
    contact_id: &'a str,
    channel: &'a str,
    customer_id: &'a str,
    language: &'a str,
    queue: Option<&'a str>,
    required_skills: SkillList<'a>,
    preferred_skills: SkillList<'a>,
    priority: i32,
    preferred_agent: Option<&'a str>,
    handoff: Option<Handoff>,
    agent_id: Option<&'a str>,
    state: Option<AgentState>,
    reason: Option<&'a str>,
    assignment_id: &'a str,
}

impl Fields<'_> {
    /// Writes the fields into `e`, an event of type `kind` (made one if it is of another).
    /// The caller has checked the fields against the type.
    fn fill(&mut self, kind: Kind, e: &mut Event) {
        if !matches!(
            (kind, &e.body),
            (Kind::ContactCreated, Body::ContactCreated(_))
                | (Kind::ContactAbandoned, Body::ContactAbandoned(_))
                | (Kind::ContactCompleted, Body::ContactCompleted(_))
                | (Kind::AgentState, Body::AgentState(_))
                | (Kind::OfferAccepted, Body::OfferAccepted(_))
                | (Kind::OfferRejected, Body::OfferRejected(_))
                | (Kind::AgentWrapupDone, Body::AgentWrapupDone(_))
        ) {
            *e = empty(kind);
        }
        set(&mut e.id, self.id);
        set(&mut e.tenant, self.tenant);
        e.ts = self.ts;
        let contact_id = (self.seen & Field::ContactId.bit() != 0).then_some(self.contact_id);
        let agent_id = self.agent_id.unwrap_or_default();
        match &mut e.body {
            Body::ContactCreated(c) => {
                set(&mut c.contact_id, self.contact_id);
                set(&mut c.channel, self.channel);
                set(&mut c.customer_id, self.customer_id);
                set(&mut c.language, self.language);
                set_opt(&mut c.queue, self.queue);
                self.required_skills.fill(&mut c.required_skills);
                self.preferred_skills.fill(&mut c.preferred_skills);
                c.priority = self.priority;
                set_opt(&mut c.preferred_agent, self.preferred_agent);
                c.handoff = self.handoff.take();
            }
            Body::ContactAbandoned(c) => set(&mut c.contact_id, self.contact_id),
            Body::ContactCompleted(c) => {
                set(&mut c.contact_id, self.contact_id);
                set_opt(&mut c.agent_id, self.agent_id);
            }
            Body::AgentState(a) => {
                set(&mut a.agent_id, agent_id);
                a.state = self.state.unwrap_or(AgentState::Offline);
                set_opt(&mut a.reason, self.reason);
            }
            Body::OfferAccepted(o) | Body::OfferRejected(o) => {
                set(&mut o.assignment_id, self.assignment_id);
                set(&mut o.agent_id, agent_id);
                set(&mut o.contact_id, self.contact_id);
                set_opt(&mut o.reason, self.reason);
            }
            Body::AgentWrapupDone(w) => {
                set(&mut w.agent_id, agent_id);
                set_opt(&mut w.contact_id, contact_id);
            }
            // Not the scanner's types: `empty` above made the body one of them.
            Body::ContactUpdated(_) | Body::AgentProfile(_) => {}
        }
    }
}

/// A skill map as read: up to [`SkillList::MAX`] (name, level) pairs, sorted by name, borrowed
/// from the record. Longer maps go to serde.
#[derive(Default)]
struct SkillList<'a> {
    pairs: [(&'a str, u8); SkillList::MAX],
    len: usize,
}

impl<'a> SkillList<'a> {
    const MAX: usize = 4;

    fn pairs(&self) -> &[(&'a str, u8)] {
        &self.pairs[..self.len]
    }

    /// Adds a pair in name order; `None` when the name is there already or the list is full.
    fn insert(&mut self, name: &'a str, level: u8) -> Option<()> {
        if self.len == Self::MAX {
            return None;
        }
        let at = match self.pairs().binary_search_by(|(n, _)| (*n).cmp(name)) {
            Ok(_) => return None,
            Err(at) => at,
        };
        self.pairs.copy_within(at..self.len, at + 1);
        self.pairs[at] = (name, level);
        self.len += 1;
        Some(())
    }

    /// `skills` becomes this list: the levels are updated in place when the names are the same
    /// (a map's nodes cannot be kept across a clear).
    fn fill(&self, skills: &mut Skills) {
        let same =
            skills.len() == self.len && skills.keys().zip(self.pairs()).all(|(k, (n, _))| k == n);
        if same {
            for (level, (_, l)) in skills.values_mut().zip(self.pairs()) {
                *level = *l;
            }
        } else {
            skills.clear();
            skills.extend(self.pairs().iter().map(|(n, l)| ((*n).to_owned(), *l)));
        }
    }
}

/// A cursor over the record. `s` and `b` are the same text; strings are cut from `s` only at
/// quote bytes, which are always character boundaries.
struct Scan<'a> {
    b: &'a [u8],
    s: &'a str,
    i: usize,
}

impl<'a> Scan<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    /// The next byte after white space, consumed.
    fn next(&mut self) -> Option<u8> {
        self.ws();
        let c = *self.b.get(self.i)?;
        self.i += 1;
        Some(c)
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    /// A string without escapes or control characters.
    fn str(&mut self) -> Option<&'a str> {
        self.ws();
        let b = self.b;
        if b.get(self.i) != Some(&b'"') {
            return None;
        }
        let start = self.i + 1;
        let mut i = start;
        // Eight bytes at a time up to the first byte that needs a look; the loop below then
        // reads it (and the last few bytes of the record).
        while let Some(word) = b.get(i..i + 8) {
            let marks = needs_a_look(u64::from_le_bytes(word.try_into().ok()?));
            if marks != 0 {
                i += (marks.trailing_zeros() / 8) as usize;
                break;
            }
            i += 8;
        }
        loop {
            match *b.get(i)? {
                b'"' => break,
                b'\\' | 0..=0x1f => return None,
                _ => i += 1,
            }
        }
        self.i = i + 1;
        self.s.get(start..i)
    }

    /// A non-negative JSON integer (no sign, fraction or exponent).
    fn uint(&mut self) -> Option<u64> {
        self.ws();
        let start = self.i;
        let mut v: u64 = 0;
        while let Some(&d @ b'0'..=b'9') = self.b.get(self.i) {
            // Exact up to 19 digits; longer numbers go to serde.
            v = v.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
            self.i += 1;
        }
        let digits = self.i - start;
        let leading_zero = digits > 1 && self.b[start] == b'0';
        let fraction = matches!(self.b.get(self.i), Some(b'.' | b'e' | b'E'));
        if digits == 0 || digits > 19 || leading_zero || fraction {
            return None;
        }
        Some(v)
    }

    /// An integer that fits an `i32`; `-0` is left to serde.
    fn i32(&mut self) -> Option<i32> {
        if self.peek()? == b'-' {
            self.i += 1;
            if !matches!(self.b.get(self.i), Some(b'1'..=b'9')) {
                return None;
            }
            let v = i64::try_from(self.uint()?).ok()?;
            i32::try_from(-v).ok()
        } else {
            i32::try_from(self.uint()?).ok()
        }
    }

    /// `{` then, for each member, `member(self, key)`; `}` ends it.
    fn object(&mut self, mut member: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.expect(b'{')?;
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(());
        }
        loop {
            let key = self.str()?;
            self.expect(b':')?;
            member(self, key)?;
            match self.next()? {
                b',' => {}
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    /// Skill name → level; a level that is no `u8` or a skill named twice goes to serde.
    fn skills(&mut self) -> Option<SkillList<'a>> {
        let mut skills = SkillList::default();
        self.object(|s, name| {
            let level = u8::try_from(s.uint()?).ok()?;
            skills.insert(name, level)
        })?;
        Some(skills)
    }

    fn handoff(&mut self) -> Option<Handoff> {
        let mut h = Handoff::default();
        self.object(|s, key| {
            let slot = match key {
                "bot" => &mut h.bot,
                "intent" => &mut h.intent,
                "summary" => &mut h.summary,
                _ => return None,
            };
            let v = s.str()?;
            slot.replace(v.to_owned()).is_none().then_some(())
        })?;
        Some(h)
    }

    /// The top-level object: `{`, then each member, `}`. Like [`Scan::object`], with each key
    /// first checked against the one `order` predicts.
    fn fields(&mut self, f: &mut Fields<'a>, order: &mut Order) -> Option<()> {
        self.expect(b'{')?;
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(());
        }
        let mut prev = Field::ALL.len();
        loop {
            let field = match self.predicted(order.0[prev]) {
                Some(field) => field,
                None => {
                    let field = Field::of(self.str()?)?;
                    order.0[prev] = field as u8;
                    field
                }
            };
            prev = field as usize;
            self.expect(b':')?;
            self.field(f, field)?;
            match self.next()? {
                b',' => {}
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    /// The predicted field, consumed, when the next key is exactly its name in quotes: three
    /// masked words against [`QUOTED`] where 24 bytes are left (in most records, for all but
    /// the last key or two), the bytes themselves otherwise.
    fn predicted(&mut self, guess: u8) -> Option<Field> {
        let field = *Field::ALL.get(usize::from(guess))?;
        let q = &QUOTED[field as usize];
        self.ws();
        let exact = match self.b.get(self.i..self.i + 24) {
            Some(bytes) => {
                let word = |k: usize| {
                    bytes
                        .get(8 * k..8 * k + 8)
                        .and_then(|w| w.try_into().ok())
                        .map_or(0, u64::from_le_bytes)
                };
                (word(0) & q.mask[0]) ^ q.word[0]
                    | (word(1) & q.mask[1]) ^ q.word[1]
                    | (word(2) & q.mask[2]) ^ q.word[2]
                    == 0
            }
            None => self.b.get(self.i..self.i + q.len).is_some_and(|key| {
                let name = field.name().as_bytes();
                key[0] == b'"' && key[q.len - 1] == b'"' && &key[1..q.len - 1] == name
            }),
        };
        exact.then(|| {
            self.i += q.len;
            field
        })
    }

    /// The value of `field`, read into `f`; a field named twice goes to serde.
    fn field(&mut self, f: &mut Fields<'a>, field: Field) -> Option<()> {
        if f.seen & field.bit() != 0 {
            return None;
        }
        f.seen |= field.bit();
        match field {
            Field::Id => f.id = self.str()?,
            Field::Tenant => f.tenant = self.str()?,
            Field::Ts => {
                f.ts = if self.peek()? == b'"' {
                    super::parse_rfc3339(self.str()?)?
                } else {
                    self.uint()?
                }
            }
            Field::Type => f.kind = Some(Kind::of(self.str()?)?),
            Field::ContactId => f.contact_id = self.str()?,
            Field::Channel => f.channel = self.str()?,
            Field::CustomerId => f.customer_id = self.str()?,
            Field::Language => f.language = self.str()?,
            Field::Queue => f.queue = Some(self.str()?),
            Field::RequiredSkills => f.required_skills = self.skills()?,
            Field::PreferredSkills => f.preferred_skills = self.skills()?,
            Field::Priority => f.priority = self.i32()?,
            Field::PreferredAgent => f.preferred_agent = Some(self.str()?),
            Field::Handoff => f.handoff = Some(self.handoff()?),
            Field::AgentId => f.agent_id = Some(self.str()?),
            Field::State => {
                f.state = Some(match self.str()? {
                    "offline" => AgentState::Offline,
                    "available" => AgentState::Available,
                    "away" => AgentState::Away,
                    _ => return None,
                })
            }
            Field::Reason => f.reason = Some(self.str()?),
            Field::AssignmentId => f.assignment_id = self.str()?,
        }
        Some(())
    }
}

/// Marks (high bit) the bytes of `w` that end or complicate a string: `"`, `\` and control
/// characters. Only the lowest mark is exact — a borrow can mark a byte above a true one — which
/// is all the string scan needs.
fn needs_a_look(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    zero(w ^ (ONES * u64::from(b'"')))
        | zero(w ^ (ONES * u64::from(b'\\')))
        | (w.wrapping_sub(ONES * 0x20) & !w & HIGH)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first byte that needs a look, as the word scan finds it and as a byte loop does.
    #[test]
    fn the_word_scan_finds_the_first_byte_that_needs_a_look() {
        let special = |c: u8| c == b'"' || c == b'\\' || c < 0x20;
        let bytes: Vec<u8> = (0..=255).collect();
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..200_000 {
            let mut w = [0u8; 8];
            for b in &mut w {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                // Mostly plain text, sometimes any byte, so that words with several marks and
                // borrows across bytes are common.
                *b = if rng % 4 == 0 {
                    bytes[(rng >> 8) as usize % 256]
                } else {
                    b'a' + (rng >> 8) as u8 % 26
                };
            }
            let expected = w.iter().position(|&c| special(c)).unwrap_or(8);
            let marks = needs_a_look(u64::from_le_bytes(w));
            let found = if marks == 0 {
                8
            } else {
                (marks.trailing_zeros() / 8) as usize
            };
            assert_eq!(found, expected, "{w:?}");
        }
    }

    #[test]
    fn every_field_is_named_by_its_key() {
        for (i, f) in Field::ALL.iter().enumerate() {
            assert_eq!(*f as usize, i, "ALL is in declaration order");
            assert!(
                matches!(Field::of(f.name()), Some(g) if g as usize == i),
                "{}",
                f.name()
            );
        }
    }

    /// One set of slots reads records whose keys come in changing orders, near misses of the
    /// predicted key among them, and gives what a scan without predictions gives.
    #[test]
    fn predicted_keys_never_change_what_is_read() {
        let accepted = [
            r#""id":"e1""#,
            r#""tenant":"t""#,
            r#""ts":1700000000000"#,
            r#""type":"offer.accepted""#,
            r#""assignment_id":"a-1""#,
            r#""agent_id":"ag""#,
            r#""contact_id":"c""#,
        ];
        // Keys that share their first eight bytes (`"preferr`), and long ones.
        let created = [
            r#""id":"e2""#,
            r#""tenant":"t""#,
            r#""ts":1700000000000"#,
            r#""type":"contact.created""#,
            r#""contact_id":"c""#,
            r#""channel":"chat""#,
            r#""customer_id":"k""#,
            r#""language":"es""#,
            r#""preferred_agent":"ag""#,
            r#""preferred_skills":{"returns":3}"#,
            r#""required_skills":{"billing":2}"#,
            r#""priority":1"#,
        ];
        let mut slots = Slots::default();
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        for round in 0..400 {
            let members: &[&str] = if round % 2 == 0 { &accepted } else { &created };
            let mut order: Vec<&str> = members.to_vec();
            // The same order several times running (as producers write), then another.
            if round % 10 < 2 {
                for i in (1..order.len()).rev() {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    order.swap(i, rng as usize % (i + 1));
                }
            }
            let plain = format!("{{{}}}", order.join(","));
            let expected = event(&plain).expect("a plain record is scanned");
            assert_eq!(event_in(&plain, &mut slots), Some(&expected), "{plain}");
            // Keys that start like the predicted one, or spell it with an escape, are not it.
            for (from, to) in [
                (r#""id":"#, r#""idx":"#),
                (r#""tenant":"#, r#""tenan":"#),
                (r#""agent_id":"#, r#""agent_i\u0064":"#),
            ] {
                let near = plain.replace(from, to);
                if near == plain {
                    continue;
                }
                assert_eq!(event_in(&near, &mut slots), None, "{near}");
                assert_eq!(event(&near), None, "{near}");
            }
            assert_eq!(event_in(&plain, &mut slots), Some(&expected), "{plain}");
        }
    }
}
