//! The pure-Rust rewrite of a module's code objects on helper threads, while the importing
//! thread (which holds the GIL) reads the code objects and rebuilds them.
//!
//! The helpers are a pool started once per process, so a module pays a wake-up, not a thread
//! start. The importing thread calls them in once it has read 4 KB of the module's bytecode;
//! each stays on the module, taking its code objects in order as they are read. Then the
//! importing thread rebuilds the code objects in order, rewriting itself the next one no helper
//! has taken whenever the one it needs is not ready. Threads are woken only when one waits (a
//! wake-up is a system call).
//!
//! Helpers never touch Python: an item's parts point into bytes and str objects that the
//! importing thread keeps alive until `Batch::finish` has seen every helper leave the batch.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

use crate::rewrite::{self, MethodTables, Parts, Policy, RewriteError, RewrittenParts};
use crate::tables::OpTable;

pub type Outcome = Result<Option<RewrittenParts>, RewriteError>;

/// Threads for rewriting one module: `FRONTRUN_REWRITE_THREADS` (read per call), else the
/// machine's cores (at most 8).
pub fn rewrite_threads() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    let cores = || *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()).min(8));
    match std::env::var("FRONTRUN_REWRITE_THREADS").ok().and_then(|v| v.trim().parse::<usize>().ok()) {
        Some(n) => n.max(1),
        None => cores(),
    }
}

/// Below this much bytecode a module is rewritten on the importing thread alone: waking a
/// helper costs tens of microseconds, the rewriter about a microsecond per 20 bytes.
const PARALLEL_MIN_BYTES: usize = 4096;

/// A byte string owned by a Python object the importing thread keeps alive.
#[derive(Clone, Copy)]
struct Borrowed {
    ptr: *const u8,
    len: usize,
}

impl Borrowed {
    fn of(bytes: &[u8]) -> Borrowed {
        Borrowed { ptr: bytes.as_ptr(), len: bytes.len() }
    }

    /// Safety: the owner is alive (the batch is not finished).
    unsafe fn get<'a>(self) -> &'a [u8] {
        std::slice::from_raw_parts(self.ptr, self.len)
    }
}

/// One code object's `Parts`, with the borrows erased.
pub struct Item {
    code: Borrowed,
    exception_table: Borrowed,
    line_table: Borrowed,
    first_line: i32,
    /// UTF-8 of each name (valid: it came from a `&str`).
    names: Vec<Borrowed>,
    const_count: usize,
    deref_names: Vec<String>,
}

impl Item {
    pub fn new(parts: &Parts<'_>) -> Item {
        Item {
            code: Borrowed::of(parts.code),
            exception_table: Borrowed::of(parts.exception_table),
            line_table: Borrowed::of(parts.line_table),
            first_line: parts.first_line,
            names: parts.names.iter().map(|n| Borrowed::of(n.as_bytes())).collect(),
            const_count: parts.const_count,
            deref_names: parts.deref_names.to_vec(),
        }
    }

    /// Safety: the Python objects behind the item are alive.
    unsafe fn rewrite(&self, job: &Job) -> Outcome {
        let names: Vec<&str> = self.names.iter().map(|n| std::str::from_utf8_unchecked(n.get())).collect();
        let parts = Parts {
            code: self.code.get(),
            exception_table: self.exception_table.get(),
            line_table: self.line_table.get(),
            first_line: self.first_line,
            names: &names,
            const_count: self.const_count,
            deref_names: &self.deref_names,
        };
        // A panic is a rewriter bug: the code object is left as it was, like any internal error.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut outcome = rewrite::rewrite_parts(job.table, &parts, job.policy, &job.methods);
            // The instruction list is for listings of other versions' pycs, never needed here;
            // it is dropped where it was made (freeing it elsewhere costs the importing thread
            // a trip through memory another core wrote).
            if let Ok(Some(rw)) = &mut outcome {
                rw.instrs.instrs = Vec::new();
            }
            outcome
        }))
        .unwrap_or_else(|_| Err(RewriteError::Internal("the rewriter panicked".into())))
    }
}

/// What every item of a batch is rewritten with.
pub struct Job {
    pub table: &'static OpTable,
    pub policy: Policy,
    pub methods: Arc<MethodTables>,
}

struct State {
    /// Boxed: a helper reads an item outside the lock while more are pushed.
    #[allow(clippy::vec_box)]
    items: Vec<Box<Item>>,
    results: Vec<Option<Outcome>>,
    /// Items are taken in order; `next` is the first not taken.
    next: usize,
    /// Helpers inside `Item::rewrite`.
    busy: usize,
    /// Until `gathered`: more items may come, so an idle helper waits for them.
    gathering: bool,
    finished: bool,
    /// Bytecode pushed so far, and whether helpers have been called in.
    bytes: usize,
    called: bool,
    /// Who is waiting (a wake-up is a system call: made only for someone waiting).
    idle_helpers: usize,
    importer_waiting: bool,
}

/// One module's items, shared with the pool.
pub struct Batch {
    job: Job,
    state: Mutex<State>,
    /// Signalled to the importing thread when a helper stores a result.
    done: Condvar,
    /// Signalled to idle helpers when an item comes or the batch is gathered or finished.
    more: Condvar,
    /// None: no helpers; everything runs on the importing thread.
    pool: Option<Sender<Ticket>>,
    /// How many pool threads are called in.
    helpers: usize,
}

// Safety: the raw pointers in `Item`s are only read while the importing thread keeps their
// owners alive (until `finish`), and those owners are immutable bytes and str objects.
unsafe impl Send for Batch {}
unsafe impl Sync for Batch {}

impl Batch {
    /// `helpers`: how many pool threads may take items (0: none).
    pub fn new(job: Job, helpers: usize) -> Arc<Batch> {
        let pool = if helpers > 0 { pool(helpers) } else { None };
        Arc::new(Batch {
            job,
            state: Mutex::new(State {
                items: Vec::new(),
                results: Vec::new(),
                next: 0,
                busy: 0,
                gathering: true,
                finished: false,
                bytes: 0,
                called: false,
                idle_helpers: 0,
                importer_waiting: false,
            }),
            done: Condvar::new(),
            more: Condvar::new(),
            pool,
            helpers,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds an item; a helper may start on it at once. Safety: what the item points into
    /// stays alive until `finish` returns.
    pub unsafe fn push(self: &Arc<Self>, item: Item) {
        let call_in = {
            let mut s = self.lock();
            s.bytes += item.code.len;
            s.items.push(Box::new(item));
            s.results.push(None);
            if s.idle_helpers > 0 {
                self.more.notify_one();
            }
            let call_in = !s.called && s.bytes >= PARALLEL_MIN_BYTES;
            s.called |= call_in;
            call_in
        };
        if call_in {
            if let Some(pool) = &self.pool {
                for _ in 0..self.helpers {
                    // A closed pool (its threads gone) leaves the items to the importing thread.
                    let _ = pool.send(Some(Arc::clone(self)));
                }
            }
        }
    }

    /// Every item is pushed: helpers stop waiting for more.
    pub fn gathered(&self) {
        let mut s = self.lock();
        s.gathering = false;
        if s.idle_helpers > 0 {
            self.more.notify_all();
        }
    }

    /// A pool thread's time on this batch: items in order, until none is left to take.
    fn help(&self) {
        let mut s = self.lock();
        loop {
            while !s.finished && s.next >= s.items.len() && s.gathering {
                s.idle_helpers += 1;
                s = self.more.wait(s).unwrap_or_else(|p| p.into_inner());
                s.idle_helpers -= 1;
            }
            if s.finished || s.next >= s.items.len() {
                return;
            }
            s = self.rewrite_next(s, true);
            if s.importer_waiting {
                self.done.notify_one();
            }
        }
    }

    /// Takes the next item, rewrites it without the lock and stores its outcome. A helper
    /// counts itself `busy` meanwhile; the importing thread need not, being the one that
    /// waits in `finish`.
    fn rewrite_next<'a>(&'a self, mut s: MutexGuard<'a, State>, helper: bool) -> MutexGuard<'a, State> {
        let i = s.next;
        s.next += 1;
        s.busy += helper as usize;
        let item: *const Item = &*s.items[i];
        drop(s);
        // Safety: the owners live until `finish`, which waits for `busy` to drop to zero.
        let outcome = unsafe { (*item).rewrite(&self.job) };
        let mut s = self.lock();
        s.results[i] = Some(outcome);
        s.busy -= helper as usize;
        s
    }

    /// Item `k`'s outcome: a helper's, or rewritten here if no helper has taken it. While a
    /// helper is on `k`, this thread rewrites the next item no one has taken rather than wait.
    pub fn take(&self, k: usize) -> Outcome {
        let mut s = self.lock();
        loop {
            if let Some(r) = s.results[k].take() {
                return r;
            }
            if s.next < s.items.len() {
                s = self.rewrite_next(s, false);
                continue;
            }
            s = self.wait_done(s);
        }
    }

    fn wait_done<'a>(&self, mut s: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        s.importer_waiting = true;
        s = self.done.wait(s).unwrap_or_else(|p| p.into_inner());
        s.importer_waiting = false;
        s
    }

    /// No item is taken after this, and it returns once no helper is still reading one.
    pub fn finish(&self) {
        let mut s = self.lock();
        s.finished = true;
        if s.idle_helpers > 0 {
            self.more.notify_all();
        }
        while s.busy > 0 {
            s = self.wait_done(s);
        }
    }
}

/// Calls a pool thread in to a batch; `None` tells one thread to stop.
type Ticket = Option<Arc<Batch>>;

struct Pool {
    pid: u32,
    queue: Sender<Ticket>,
    work: Arc<Mutex<Receiver<Ticket>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// Threads not yet returned, and the signal of one returning.
    live: Arc<(Mutex<usize>, Condvar)>,
}

static POOL: Mutex<Option<Pool>> = Mutex::new(None);

/// Counts its thread out of `live` when the thread returns.
struct Leaving(Arc<(Mutex<usize>, Condvar)>);

impl Drop for Leaving {
    fn drop(&mut self) {
        *self.0 .0.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
        self.0 .1.notify_all();
    }
}

/// The pool's queue, with at least `helpers` threads (started on first use, grown on
/// demand); a forked child starts its own.
fn pool(helpers: usize) -> Option<Sender<Ticket>> {
    let mut guard = POOL.lock().unwrap_or_else(|p| p.into_inner());
    let pid = std::process::id();
    if guard.as_ref().is_none_or(|p| p.pid != pid) {
        // In a child forked without `stop_helpers`, the old pool's threads do not exist.
        let (queue, work) = channel();
        let live = Arc::new((Mutex::new(0), Condvar::new()));
        *guard = Some(Pool { pid, queue, work: Arc::new(Mutex::new(work)), threads: Vec::new(), live });
    }
    let p = guard.as_mut().expect("just made");
    while p.threads.len() < helpers {
        let work = Arc::clone(&p.work);
        *p.live.0.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        let leaving = Leaving(Arc::clone(&p.live));
        let started = std::thread::Builder::new().name("frontrun-rewrite".into()).spawn(move || {
            let _leaving = leaving;
            loop {
                let next = work.lock().unwrap_or_else(|p| p.into_inner()).recv();
                match next {
                    Ok(Some(batch)) => batch.help(),
                    Ok(None) | Err(_) => return,
                }
            }
        });
        // A thread the system refuses counts itself out (its closure is dropped); the ones
        // there are (or the importing thread) do the work.
        match started {
            Ok(thread) => p.threads.push(thread),
            Err(_) => break,
        }
    }
    (!p.threads.is_empty()).then(|| p.queue.clone())
}

/// Stops the pool's threads (the next rewrite starts new ones) and waits for them, at most
/// half a second. Run before `os.fork()`: a process with extra threads is one whose fork
/// CPython warns about, and the child would not have them anyway. A batch still running
/// finishes its items itself; a helper held up in one (its importing thread is waiting for the
/// thread that forks) is not waited for past the limit, so a fork never hangs on it.
pub fn stop_helpers() {
    let Some(p) = POOL.lock().unwrap_or_else(|p| p.into_inner()).take() else { return };
    if p.pid != std::process::id() {
        return;
    }
    for _ in &p.threads {
        let _ = p.queue.send(None);
    }
    let (live, left) = &*p.live;
    let live = live.lock().unwrap_or_else(|p| p.into_inner());
    let (live, _) = left
        .wait_timeout_while(live, std::time::Duration::from_millis(500), |n| *n > 0)
        .unwrap_or_else(|p| p.into_inner());
    if *live == 0 {
        drop(live);
        // Each has returned from its loop: joining only waits out its exit.
        for t in p.threads {
            let _ = t.join();
        }
    }
}
