//! Maps and sets keyed by ids this crate generates: Engine.IO session ids,
//! Socket.IO socket ids, connection and poll numbers.
//!
//! Those keys are random or sequential, never chosen by a peer, so a fast
//! hash (foldhash, seeded per process) is safe for them: a peer can look
//! keys up but cannot insert colliding ones. Keys a peer or application
//! names (rooms, namespaces) stay on the standard, DoS-resistant hasher.
//!
//! ```
//! use switchboard_core::ids::IdMap;
//!
//! let mut sessions: IdMap<std::sync::Arc<str>, u32> = IdMap::default();
//! sessions.insert("Jz2d0TUh_Wd7TVpVAAAB".into(), 1);
//! assert_eq!(sessions.get("Jz2d0TUh_Wd7TVpVAAAB"), Some(&1));
//! ```

use std::collections::{HashMap, HashSet};

/// A map keyed by generated ids.
pub type IdMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A set of generated ids.
pub type IdSet<K> = HashSet<K, foldhash::fast::RandomState>;
