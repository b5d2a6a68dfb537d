//! Maps and sets keyed by ids this crate generates: Engine.IO session ids,
//! Socket.IO socket ids, connection and poll numbers.
//!
//! Those keys are random or sequential, never chosen by a peer, so a fast
//! hash (foldhash, seeded per process) is safe for them: a peer can look
//! keys up but cannot insert colliding ones. Keys a peer or application
//! names (rooms, namespaces) stay on the standard, DoS-resistant hasher.

use std::collections::{HashMap, HashSet};

/// A map keyed by generated ids.
pub(crate) type IdMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A set of generated ids.
pub(crate) type IdSet<K> = HashSet<K, foldhash::fast::RandomState>;
