//! Group commit: one writer thread owns redb's write transaction and commits
//! every write waiting for it together, with one `fsync`, answering each
//! caller only once that `fsync` has returned.
//!
//! redb admits one writer at a time, and a durable commit costs an `fsync`.
//! With a transaction per interaction, ingest runs at the disk's `fsync`
//! rate however many requests wait. Here, while one batch is being synced,
//! the next writes queue up, and the writer applies them all in the next
//! transaction: the more requests wait, the more share an `fsync`. Nobody
//! waits for a timer: a lone write commits at once.
//!
//! Each write keeps its own all-or-nothing outcome inside the shared
//! transaction: it checks its conditions (dedupe marker, version) before it
//! changes anything, so one that fails (`Duplicate`, `Conflict`) has written
//! nothing and the others still commit. A write that fails in redb itself
//! (`Unavailable`), a failed commit, or a write that panics fails the whole
//! batch: every write of it gets `Unavailable`, none of them lands, and the
//! writer goes on with the next batch.
//!
//! A batch opens each table it touches once (`Tables`) and keeps it open
//! until the commit: opening a table is a lookup in redb's table tree and
//! closing it an update of that tree, which per write were a tenth of the
//! writer's time under load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use redb::{Database, TableDefinition, TableHandle, WriteTransaction};
use tokio::sync::oneshot;

use crate::store::StoreError;

/// The store's tables: string keys, byte values.
pub type Table = TableDefinition<'static, &'static str, &'static [u8]>;
/// One of them, open in the batch's transaction.
pub type OpenTable<'txn> = redb::Table<'txn, &'static str, &'static [u8]>;

/// How the embedded store commits writes (`SCOREHOOK_COMMIT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommitMode {
    /// Concurrent writes share one transaction and one `fsync`.
    #[default]
    Group,
    /// Every write is its own transaction with its own `fsync`.
    Each,
}

impl CommitMode {
    /// The most writes one transaction takes.
    fn batch_limit(self) -> usize {
        match self {
            CommitMode::Group => 512,
            CommitMode::Each => 1,
        }
    }
}

/// A write's work within the shared transaction. It must check its
/// conditions before it writes: an `Err` other than `Unavailable` promises
/// that it changed nothing.
pub type Work<T> = Box<dyn FnOnce(&mut Tables<'_>) -> Result<T, StoreError> + Send>;

/// The tables a batch has opened so far, open until it commits.
pub struct Tables<'txn> {
    txn: &'txn WriteTransaction,
    open: Vec<(Table, OpenTable<'txn>)>,
}

impl<'txn> Tables<'txn> {
    fn new(txn: &'txn WriteTransaction) -> Self {
        Self { txn, open: Vec::new() }
    }

    /// `table`, opened now if no write of this batch has opened it yet.
    pub fn open(&mut self, table: Table) -> Result<&mut OpenTable<'txn>, StoreError> {
        let at = match self.open.iter().position(|(def, _)| def.name() == table.name()) {
            Some(at) => at,
            None => {
                let opened = self.txn.open_table(table).map_err(super::unavailable)?;
                self.open.push((table, opened));
                self.open.len() - 1
            }
        };
        Ok(&mut self.open[at].1)
    }
}

/// A queued write, with the channel its caller awaits.
trait Queued: Send {
    /// Runs the work; `Err` (a redb failure) means the transaction is spoilt.
    fn apply(&mut self, tables: &mut Tables<'_>) -> Result<(), String>;
    /// Answers the caller once the batch's fate is known.
    fn answer(self: Box<Self>, committed: Result<(), &str>);
}

struct Pending<T> {
    work: Option<Work<T>>,
    outcome: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T: Send> Queued for Pending<T> {
    fn apply(&mut self, tables: &mut Tables<'_>) -> Result<(), String> {
        let Some(work) = self.work.take() else {
            return Ok(());
        };
        match work(tables) {
            Err(StoreError::Unavailable(reason)) => Err(reason),
            outcome => {
                self.outcome = Some(outcome);
                Ok(())
            }
        }
    }

    fn answer(self: Box<Self>, committed: Result<(), &str>) {
        // A failed batch fails everyone: even a `Duplicate` was judged
        // against writes that did not land.
        let outcome = match (committed, self.outcome) {
            (Ok(()), Some(outcome)) => outcome,
            (Ok(()), None) => Err(StoreError::Unavailable("the write was not applied".into())),
            (Err(reason), _) => Err(StoreError::Unavailable(reason.to_owned())),
        };
        // The caller may have gone (a dropped request); the write stands.
        let _ = self.reply.send(outcome);
    }
}

/// The handle to the writer thread; dropping the last one stops it and
/// waits for it, so the file can be opened again at once.
pub struct Writer {
    queue: Option<Sender<Box<dyn Queued>>>,
    thread: Option<JoinHandle<()>>,
    counts: Arc<Counts>,
}

/// What the writer has done: with group commit, fewer transactions (and
/// `fsync`s) than writes.
#[derive(Default)]
struct Counts {
    writes: AtomicU64,
    transactions: AtomicU64,
}

impl Writer {
    pub fn start(db: Arc<Database>, mode: CommitMode) -> Result<Self, StoreError> {
        let (queue, writes) = mpsc::channel();
        let counts = Arc::new(Counts::default());
        let counted = Arc::clone(&counts);
        let thread = std::thread::Builder::new()
            .name("scorehook-writer".into())
            .spawn(move || run(&db, &writes, mode.batch_limit(), &counted))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the store's writer: {e}")))?;
        Ok(Self { queue: Some(queue), thread: Some(thread), counts })
    }

    /// Write transactions tried so far (each costs one `fsync` when it commits).
    pub fn transactions(&self) -> u64 {
        self.counts.transactions.load(Ordering::Relaxed)
    }

    /// Queues `work` and waits until its batch is committed (or failed).
    pub async fn write<T: Send + 'static>(&self, work: Work<T>) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Unavailable("the store's writer has stopped".into());
        let queue = self.queue.as_ref().ok_or_else(stopped)?;
        queue.send(Box::new(Pending { work: Some(work), outcome: None, reply })).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            // The thread ends when the queue closes (writes' panics are caught in it).
            let _ = thread.join();
        }
        let writes = self.counts.writes.load(Ordering::Relaxed);
        tracing::info!(writes, transactions = self.transactions(), "the store's writer stopped");
    }
}

fn run(db: &Database, writes: &Receiver<Box<dyn Queued>>, batch_limit: usize, counts: &Counts) {
    while let Ok(first) = writes.recv() {
        let mut batch = vec![first];
        while batch.len() < batch_limit {
            match writes.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        counts.transactions.fetch_add(1, Ordering::Relaxed);
        counts.writes.fetch_add(batch.len() as u64, Ordering::Relaxed);
        // A panic unwinds out of the transaction, which aborts it; the
        // writer itself must outlive it, or every later write would fail.
        let committed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| commit(db, &mut batch)))
            .unwrap_or_else(|_| Err("a write of this batch panicked; none of it was stored".to_owned()));
        for write in batch {
            write.answer(committed.as_ref().copied().map_err(String::as_str));
        }
    }
}

fn commit(db: &Database, batch: &mut [Box<dyn Queued>]) -> Result<(), String> {
    let txn = db.begin_write().map_err(|e| e.to_string())?;
    let mut tables = Tables::new(&txn);
    for write in batch.iter_mut() {
        // On a failure the transaction is dropped, which aborts it.
        write.apply(&mut tables)?;
    }
    // Closing the tables writes their roots back into the transaction,
    // which `commit` then needs to own alone.
    drop(tables);
    txn.commit().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;

    use super::*;

    const ROWS: Table = TableDefinition::new("rows");

    fn writer(mode: CommitMode) -> (Arc<Writer>, Arc<Database>, tempfile::TempDir) {
        let dir = tempfile::TempDir::new().unwrap();
        let db = Arc::new(Database::create(dir.path().join("test.redb")).unwrap());
        (Arc::new(Writer::start(Arc::clone(&db), mode).unwrap()), db, dir)
    }

    fn insert(key: &'static str) -> Work<()> {
        Box::new(move |tables| {
            tables.open(ROWS).unwrap().insert(key, [1].as_slice()).unwrap();
            Ok(())
        })
    }

    fn stored(db: &Database, key: &str) -> bool {
        let txn = db.begin_read().unwrap();
        let table = match txn.open_table(ROWS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return false,
            Err(e) => panic!("{e}"),
        };
        table.get(key).unwrap().is_some()
    }

    type Answer = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>;

    /// Holds the writer inside a first write until `writes` are all queued
    /// behind it, then lets it go: the queued writes form the next batch.
    async fn queued_behind_a_held_write(writer: &Arc<Writer>, writes: Vec<Work<()>>) -> Vec<Result<(), StoreError>> {
        let (entered, inside) = std::sync::mpsc::channel::<()>();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let held = {
            let writer = Arc::clone(writer);
            tokio::spawn(async move {
                writer
                    .write::<()>(Box::new(move |_| {
                        entered.send(()).unwrap();
                        released.recv().unwrap();
                        Ok(())
                    }))
                    .await
            })
        };
        tokio::task::spawn_blocking(move || inside.recv().unwrap()).await.unwrap();
        let mut answers: Vec<Answer> = Vec::new();
        for work in writes {
            let mut answer: Answer = Box::pin({
                let writer = Arc::clone(writer);
                async move { writer.write(work).await }
            });
            // One poll queues the write (the send happens before the first await).
            assert!(poll_once(answer.as_mut()).await.is_none(), "answered before its batch ran");
            answers.push(answer);
        }
        release.send(()).unwrap();
        held.await.unwrap().unwrap();
        let mut outcomes = Vec::new();
        for answer in answers {
            outcomes.push(answer.await);
        }
        outcomes
    }

    /// Polls a future once; `Some` if it finished.
    async fn poll_once<F: Future + Unpin>(mut future: F) -> Option<F::Output> {
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match Pin::new(&mut future).poll(cx) {
                std::task::Poll::Ready(out) => Some(out),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }

    #[tokio::test]
    async fn writes_waiting_together_share_one_transaction() {
        let (writer, db, _dir) = writer(CommitMode::Group);
        let outcomes = queued_behind_a_held_write(&writer, vec![insert("a"), insert("b"), insert("c")]).await;
        assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
        assert_eq!(writer.transactions(), 2, "the held write's, then one for the three queued behind it");
        assert!(["a", "b", "c"].iter().all(|k| stored(&db, k)));
    }

    #[tokio::test]
    async fn in_each_mode_every_write_has_its_own_transaction() {
        let (writer, db, _dir) = writer(CommitMode::Each);
        let outcomes = queued_behind_a_held_write(&writer, vec![insert("a"), insert("b"), insert("c")]).await;
        assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
        assert_eq!(writer.transactions(), 4);
        assert!(["a", "b", "c"].iter().all(|k| stored(&db, k)));
    }

    #[tokio::test]
    async fn a_refused_write_changes_nothing_and_its_batch_still_commits() {
        let (writer, db, _dir) = writer(CommitMode::Group);
        let refused: Work<()> = Box::new(|_| Err(StoreError::Conflict));
        let outcomes = queued_behind_a_held_write(&writer, vec![insert("a"), refused, insert("c")]).await;
        assert!(outcomes[0].is_ok() && outcomes[2].is_ok(), "{outcomes:?}");
        assert!(matches!(outcomes[1], Err(StoreError::Conflict)), "{outcomes:?}");
        assert!(stored(&db, "a") && stored(&db, "c"));
        assert_eq!(writer.transactions(), 2);
    }

    #[tokio::test]
    async fn a_write_failing_in_the_store_fails_its_whole_batch_and_nothing_lands() {
        let (writer, db, _dir) = writer(CommitMode::Group);
        let broken: Work<()> = Box::new(|tables| {
            tables.open(ROWS).unwrap().insert("half", [1].as_slice()).unwrap();
            Err(StoreError::Unavailable("disk full".into()))
        });
        let outcomes = queued_behind_a_held_write(&writer, vec![insert("a"), broken, insert("c")]).await;
        assert!(outcomes.iter().all(|o| matches!(o, Err(StoreError::Unavailable(_)))), "{outcomes:?}");
        assert!(!stored(&db, "a") && !stored(&db, "half") && !stored(&db, "c"), "the batch was rolled back");
        writer.write(insert("after")).await.unwrap();
        assert!(stored(&db, "after"), "the writer goes on after a failed batch");
    }

    #[tokio::test]
    async fn a_write_that_panics_fails_its_batch_and_the_writer_goes_on() {
        let (writer, db, _dir) = writer(CommitMode::Group);
        let panics: Work<()> = Box::new(|tables| {
            tables.open(ROWS).unwrap().insert("half", [1].as_slice()).unwrap();
            panic!("a bug in a write");
        });
        let outcomes = queued_behind_a_held_write(&writer, vec![insert("a"), panics, insert("c")]).await;
        assert!(outcomes.iter().all(|o| matches!(o, Err(StoreError::Unavailable(_)))), "{outcomes:?}");
        assert!(!stored(&db, "a") && !stored(&db, "half") && !stored(&db, "c"), "the batch was rolled back");
        writer.write(insert("after")).await.unwrap();
        assert!(stored(&db, "after"), "the writer survived the panic");
    }

    #[tokio::test]
    async fn dropping_the_writer_releases_the_file_at_once() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("test.redb");
        let db = Arc::new(Database::create(&path).unwrap());
        let writer = Writer::start(Arc::clone(&db), CommitMode::Group).unwrap();
        writer.write(insert("a")).await.unwrap();
        drop((writer, db));
        let reopened = Database::create(&path).unwrap();
        assert!(stored(&reopened, "a"));
    }
}
