//! The Lua scripts the Redis store runs: each is one atomic step on the server (a quota
//! reservation, a rate-limit bucket, an owner written once), so replicas never race inside it.

use redis::Script;

pub(super) struct Scripts {
    pub reserve: Script,
    pub settle: Script,
    pub session: Script,
    pub gcra: Script,
    pub lease: Script,
    pub handle: Script,
    pub read_handle: Script,
}

impl Scripts {
    pub fn load() -> Scripts {
        Scripts {
            reserve: Script::new(include_str!("../lua/reserve.lua")),
            settle: Script::new(include_str!("../lua/settle.lua")),
            session: Script::new(include_str!("../lua/session.lua")),
            gcra: Script::new(include_str!("../lua/gcra.lua")),
            lease: Script::new(include_str!("../lua/lease.lua")),
            handle: Script::new(include_str!("../lua/handle.lua")),
            read_handle: Script::new(include_str!("../lua/read_handle.lua")),
        }
    }
}
