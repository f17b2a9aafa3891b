//! Method names by role, shared by the rewriter (where reports go) and the runtime (what a
//! reported call does to its receiver). Both sides read these tables, so they cannot drift.

use std::collections::HashMap;

use crate::rewrite::sites::role;
use crate::rewrite::{FastHash, NameSet};

/// Method names by role. The runtime classifies by the real receiver or callable; these only
/// decide where reports go.
pub struct MethodTables {
    pub resource: NameSet,
    pub container: NameSet,
    /// Synchronisation methods (reported as `call` before the call, like container methods).
    pub sync: NameSet,
    /// pathlib file methods (`PATH_METHODS`).
    pub path: NameSet,
    pub builtin: NameSet,
    /// Builtins that read their first argument's size or contents, reported only when called
    /// by a plain name (`len(x)`, not `obj.len(x)`).
    pub reading: NameSet,
    /// Container methods reported after the call too (`HOLDING_METHODS`).
    pub holding: NameSet,
    /// Every name above with the sets it is in (`sites::role` bits): one lookup per name.
    pub(crate) roles: HashMap<String, u8, FastHash>,
}

/// Resource methods reported before and after the call (with the returned object).
pub const DEFAULT_RESOURCE_METHODS: &[&str] = &[
    // DB-API
    "execute",
    "executemany",
    "executescript",
    "fetchone",
    "fetchmany",
    "fetchall",
    "commit",
    "rollback",
    "cursor",
    "close", // sockets
    "connect",
    "send",
    "sendall",
    "sendto",
    "recv",
    "recv_into",
    "recvfrom", // files
    "read",
    "readline",
    "readlines",
    "write",
    "writelines",
    "flush",
    "truncate",
    "seek",
];

/// Methods of list, dict (and OrderedDict, Counter), set, deque and bytearray that read or mutate
/// the receiver.
pub const CONTAINER_METHODS: &[&str] = &[
    "append",
    "extend",
    "insert",
    "pop",
    "remove",
    "clear",
    "sort",
    "reverse",
    "copy",
    "count",
    "index",
    "update",
    "setdefault",
    "get",
    "keys",
    "values",
    "items",
    "popitem",
    "move_to_end",
    "subtract",
    // Counter's own readers (Python code out of the rewriter's sight).
    "most_common",
    "elements",
    "total",
    "add",
    "discard",
    "difference_update",
    "intersection_update",
    "symmetric_difference_update",
    "union",
    "intersection",
    "difference",
    "symmetric_difference",
    "issubset",
    "issuperset",
    "isdisjoint",
    "appendleft",
    "popleft",
    "extendleft",
    "rotate",
    // Called by name (`self._data.__setitem__(k, v)`): the same accesses as `d[k] = v`.
    "__getitem__",
    "__setitem__",
    "__delitem__",
    "__contains__",
    "__len__",
    "__iter__",
    "__iadd__",
    "__ior__",
    "__iand__",
    "__isub__",
    "__ixor__",
];

/// Methods of locks, conditions, events, semaphores, queues and threads that may block or
/// observe another thread: the runtime must see them before the call enters C (it filters by
/// the receiver's type; a `str.join` report is dropped there).
pub const SYNC_METHODS: &[&str] = &[
    "acquire",
    "release",
    "locked",
    "wait",
    "notify",
    "notify_all",
    "set",
    "is_set",
    "get",
    "put",
    "get_nowait",
    "put_nowait",
    "join",
    // A generator's resumes that are no resource method's name (`send`, `close` are): the
    // runtime acts on a watched generator's alone.
    "throw",
    "__next__",
];

/// pathlib methods that use the files (and directories) their receiver names; `_dpor._PATH_METHODS`
/// says how. Reported like container methods (receiver and name, before the call); the runtime
/// acts only on a `pathlib.PurePath` receiver. (`replace` is among them, so every `str.replace`
/// in rewritten code takes a guard too; the report of one is dropped at once, its receiver being
/// immutable.)
pub const PATH_METHODS: &[&str] = &[
    "exists",
    "is_file",
    "is_dir",
    "is_symlink",
    "stat",
    "lstat",
    "read_text",
    "read_bytes",
    "samefile",
    "iterdir",
    "glob",
    "rglob",
    "walk",
    "write_text",
    "write_bytes",
    "touch",
    "mkdir",
    "rmdir",
    "unlink",
    "symlink_to",
    "hardlink_to",
    "rename",
    "replace",
    "chmod",
    "open",
];

/// Functions that use the file or directory a path argument names (`_dpor._PATH_FUNCTIONS`,
/// by the name they are called through): a call of one is reported even when its lone argument
/// is a string (`open("data.txt")`, `os.path.exists(f"{d}/lock")`), which no other call is.
pub const PATH_FUNCTIONS: &[&str] = &[
    "open",
    "stat",
    "lstat",
    "access",
    "exists",
    "lexists",
    "isfile",
    "isdir",
    "islink",
    "getsize",
    "getmtime",
    "listdir",
    "scandir",
    "walk",
    "chmod",
    "utime",
    "truncate",
    "remove",
    "unlink",
    "mkdir",
    "makedirs",
    "rmdir",
    "removedirs",
    "rmtree",
    "copytree",
    "glob",
    "iglob",
];

/// Callables (by the name they are called through) that read or write the state of their
/// first argument: the report carries the callable, whose identity the runtime checks.
pub const STATE_BUILTINS: &[&str] = &[
    "getattr",
    "setattr",
    "delattr",
    "hasattr",
    "getitem",
    "setitem",
    "delitem",
    "heappush",
    "heappop",
    "heapify",
    "heapreplace",
    "heappushpop",
    "insort",
    "insort_left",
    "insort_right",
    // `random.shuffle(x)`, `rng.shuffle(x)`: Python the user did not select, writing `x`.
    "shuffle",
    // `operator.iadd(lst, more)`: in place on a mutable container.
    "iadd",
    "iconcat",
    "ior",
    "iand",
    "isub",
    "ixor",
    "imul",
];

/// Builtins whose result depends on a container's size or contents (a thread branching on
/// them must be seen reading the container). Positional calls only. The lazy ones
/// (`enumerate`, `zip`, `reversed`, `map`, `filter`) read it later, through the iterator they
/// make: the read is reported when the iterator is made.
#[rustfmt::skip]
pub const READING_BUILTINS: &[&str] = &[
    "len", "bool", "iter", "sorted", "list", "tuple", "set", "frozenset", "dict", "sum", "min", "max", "any", "all",
    "enumerate", "zip", "reversed", "map", "filter",
    "str", "repr", "format", "print",
    // Not a container's: every attribute of its argument (`json.dumps(vars(p))`).
    "vars",
];

impl MethodTables {
    pub fn new(extra_resources: &[String]) -> MethodTables {
        let set = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<NameSet>();
        let mut resource = set(DEFAULT_RESOURCE_METHODS);
        // A configured `pkg.Class.method` is reported by its method name; the runtime checks
        // the class on the real receiver.
        resource.extend(extra_resources.iter().map(|m| method_name(m).to_string()));
        let mut tables = MethodTables {
            resource,
            container: set(CONTAINER_METHODS),
            sync: set(SYNC_METHODS),
            path: set(PATH_METHODS),
            builtin: set(STATE_BUILTINS),
            reading: set(READING_BUILTINS),
            holding: set(HOLDING_METHODS),
            roles: HashMap::default(),
        };
        for (names, bit) in [
            (&tables.builtin, role::BUILTIN),
            (&tables.resource, role::RESOURCE),
            (&tables.container, role::CONTAINER),
            (&tables.sync, role::CONTAINER),
            (&tables.path, role::CONTAINER),
            (&tables.reading, role::READING),
            (&tables.holding, role::HOLDING),
        ] {
            for name in names {
                *tables.roles.entry(name.clone()).or_insert(0) |= bit;
            }
        }
        tables
    }

    /// The `sites::role` bits of `name`.
    pub(crate) fn roles_of(&self, name: &str) -> u8 {
        self.roles.get(name).copied().unwrap_or(0)
    }
}

/// The method part of a configured resource method (`"mylib.Pool.get"` -> `"get"`).
pub fn method_name(entry: &str) -> &str {
    entry.rsplit('.').next().unwrap_or(entry)
}

/// Container methods that may run the caller's code (a `key=` function, a `__lt__`) while they
/// hold their receiver: `list.sort` empties the list until it is done, so another thread's
/// append in between is lost ("list modified during sort"). Reported after the call too.
pub const HOLDING_METHODS: &[&str] = &["sort"];

/// Writing container methods (and in-place operators) that take an iterable and add or remove
/// its items one at a time: given a generator, its body runs between them, and another thread
/// there sees the container part way through (`lst.extend(gen)`, `d.update(pairs)`).
pub const CONSUMING_METHODS: &[&str] = &[
    "extend",
    "extendleft",
    "update",
    "difference_update",
    "intersection_update",
    "symmetric_difference_update",
    "+=",
    "|=",
    "-=",
    "&=",
    "^=",
];

/// Methods that write their receiver, per builtin container type (every other method of the
/// type reads it). `bytearray` shares the list table.
pub const LIST_WRITES: &[&str] = &[
    "append",
    "extend",
    "insert",
    "pop",
    "remove",
    "clear",
    "sort",
    "reverse",
    "__setitem__",
    "__delitem__",
    "__iadd__",
];
/// (`move_to_end`: OrderedDict; `subtract`: Counter.)
pub const DICT_WRITES: &[&str] = &[
    "pop",
    "popitem",
    "move_to_end",
    "subtract",
    "clear",
    "update",
    "setdefault",
    "__setitem__",
    "__delitem__",
    "__ior__",
];
pub const SET_WRITES: &[&str] = &[
    "add",
    "discard",
    "remove",
    "pop",
    "clear",
    "update",
    "difference_update",
    "intersection_update",
    "symmetric_difference_update",
    "__ior__",
    "__iand__",
    "__isub__",
    "__ixor__",
];
pub const DEQUE_WRITES: &[&str] = &[
    "append",
    "appendleft",
    "pop",
    "popleft",
    "extend",
    "extendleft",
    "rotate",
    "clear",
    "insert",
    "remove",
    "reverse",
    "__setitem__",
    "__delitem__",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mutating_method_is_reported() {
        // A write method the rewriter does not report would be a mutation the runtime never sees.
        for table in [LIST_WRITES, DICT_WRITES, SET_WRITES, DEQUE_WRITES] {
            for name in table.iter() {
                assert!(CONTAINER_METHODS.contains(name), "{name} writes a container but is not reported");
            }
        }
    }

    #[test]
    fn configured_resource_methods_are_reported_by_method_name() {
        let tables = MethodTables::new(&["mylib.Pool.get".to_string(), "checkout".to_string()]);
        assert!(tables.resource.contains("get"));
        assert!(tables.resource.contains("checkout"));
        assert!(!tables.resource.contains("mylib.Pool.get"));
    }
}
