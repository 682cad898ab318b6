//! The training loader: which examples each batch of an epoch holds, and background workers that
//! assemble (and augment) those batches ahead of the training step.
//!
//! An epoch is an order of the training examples (a seeded shuffle, or the dataset's order) cut
//! into batches of `batch_size`, the last one shorter unless `drop_last` drops it. With
//! `workers > 0`, worker `w` prepares batches `w, w + workers, …` and hands each to the training
//! thread through its own queue of `prefetch` batches, so at most `workers × (prefetch + 1)`
//! batches exist at once, whatever the dataset's size; the training thread takes them in order.
//! An example's augmentation depends only on (seed, epoch, example index) — see
//! [`Augmenter::rng`] — so the batches are the same with any number of workers, and a run that
//! resumes mid-epoch sees the batches it would have seen.
//!
//! The workers are scoped threads ([`std::thread::scope`]): they borrow the dataset, and stop
//! when the training thread drops the epoch's iterator (after the last batch, or early on an
//! error).

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::{Scope, ScopedJoinHandle};

use candle_core::{Device, Tensor};
use pipeline_core::{Batch, Dataset, Rng, Targets};
use rand::seq::SliceRandom;

use crate::{Augmenter, Result};

/// Batches of a training dataset, optionally augmented.
#[derive(Debug)]
pub struct Loader<'a> {
    data: &'a Dataset,
    batch_size: usize,
    drop_last: bool,
    augment: Option<Augmenter>,
    workers: usize,
    prefetch: usize,
}

/// One prepared batch.
#[derive(Debug, Clone)]
pub struct LoadedBatch {
    /// 0-based position of the batch in the epoch.
    pub index: usize,
    /// The dataset rows it holds, in order.
    pub rows: Vec<usize>,
    /// The tensors.
    pub batch: Batch,
}

impl<'a> Loader<'a> {
    /// Batches of `batch_size` examples of `data` (the last one dropped if short and
    /// `drop_last`), prepared by `workers` background threads (0: in the caller's thread) up to
    /// `prefetch` batches ahead each, and transformed by `augment` (`None`: as they are).
    pub fn new(
        data: &'a Dataset,
        batch_size: usize,
        drop_last: bool,
        augment: Option<Augmenter>,
        workers: usize,
        prefetch: usize,
    ) -> Self {
        let augment = augment.filter(|a| !a.is_empty());
        Self { data, batch_size: batch_size.max(1), drop_last, augment, workers, prefetch: prefetch.max(1) }
    }

    /// Batches per epoch.
    pub fn batches(&self) -> usize {
        if self.drop_last { self.data.len() / self.batch_size } else { self.data.len().div_ceil(self.batch_size) }
    }

    /// The augmentation, if any.
    pub fn augmenter(&self) -> Option<&Augmenter> {
        self.augment.as_ref()
    }

    /// An epoch's order of the examples: shuffled by `rng`, or the dataset's order without one.
    pub fn order(&self, rng: Option<&mut Rng>) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.data.len()).collect();
        if let Some(rng) = rng {
            order.shuffle(rng);
        }
        order
    }

    /// The rows of batch `b` of an epoch in `order`.
    fn rows<'o>(&self, order: &'o [usize], b: usize) -> &'o [usize] {
        let start = b * self.batch_size;
        &order[start.min(order.len())..(start + self.batch_size).min(order.len())]
    }

    /// Assembles batch `b` of `epoch` (1-based) from `order`, augmenting each example.
    pub fn load(&self, epoch: usize, order: &[usize], b: usize, device: &Device) -> Result<LoadedBatch> {
        let rows = self.rows(order, b).to_vec();
        let batch = match &self.augment {
            None => self.data.batch(&rows, device)?,
            Some(a) => {
                let w = self.data.width();
                let mut xs = Vec::with_capacity(rows.len() * w);
                self.data.rows_into(&rows, &mut xs)?;
                for (x, &i) in xs.chunks_exact_mut(w.max(1)).zip(&rows) {
                    a.apply(x, epoch, i);
                }
                let mut shape = vec![rows.len()];
                shape.extend(self.data.schema().input.shape());
                let inputs = Tensor::from_vec(xs, shape, device)?;
                let targets = match self.data.targets().select(&rows) {
                    Targets::Classes(c) => Tensor::from_vec(c, rows.len(), device)?,
                    Targets::Values(v) | Targets::Steps { values: v, .. } => {
                        let n = v.len();
                        Tensor::from_vec(v, n, device)?
                    }
                };
                Batch { inputs, targets }
            }
        };
        Ok(LoadedBatch { index: b, rows, batch })
    }

    /// The batches of `epoch` (1-based) in `order`, from batch `skip` on (a resumed epoch skips
    /// those already trained on). With workers, they are spawned in `scope` and run ahead.
    pub fn epoch<'scope, 'env>(
        &'env self,
        scope: &'scope Scope<'scope, 'env>,
        epoch: usize,
        order: &'env [usize],
        skip: usize,
        device: &'env Device,
    ) -> Epoch<'scope, 'env, 'a> {
        let total = self.batches();
        let mut queues = Vec::new();
        let mut handles = Vec::new();
        let workers = self.workers.min(total.saturating_sub(skip));
        for w in 0..workers {
            let (tx, rx): (SyncSender<Result<LoadedBatch>>, Receiver<_>) = sync_channel(self.prefetch);
            handles.push(scope.spawn(move || {
                for b in (skip + w..total).step_by(workers) {
                    let item = self.load(epoch, order, b, device);
                    let failed = item.is_err();
                    // A closed queue means the training thread is done with this epoch.
                    if tx.send(item).is_err() || failed {
                        break;
                    }
                }
            }));
            queues.push(rx);
        }
        Epoch { loader: self, epoch, order, device, next: skip, total, skip, queues, _handles: handles }
    }
}

/// The batches of one epoch, in order; see [`Loader::epoch`].
pub struct Epoch<'scope, 'env, 'a> {
    loader: &'env Loader<'a>,
    epoch: usize,
    order: &'env [usize],
    device: &'env Device,
    next: usize,
    total: usize,
    skip: usize,
    queues: Vec<Receiver<Result<LoadedBatch>>>,
    _handles: Vec<ScopedJoinHandle<'scope, ()>>,
}

impl Iterator for Epoch<'_, '_, '_> {
    type Item = Result<LoadedBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.total {
            return None;
        }
        let b = self.next;
        self.next += 1;
        if self.queues.is_empty() {
            return Some(self.loader.load(self.epoch, self.order, b, self.device));
        }
        let queue = &self.queues[(b - self.skip) % self.queues.len()];
        // A worker only hangs up early after sending an error, which was returned already.
        Some(queue.recv().unwrap_or_else(|_| self.loader.load(self.epoch, self.order, b, self.device)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.total - self.next;
        (left, Some(left))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use pipeline_core::{InputSchema, Schema, Target, Task, rng};

    use super::*;
    use crate::{Augmentation, Transform};

    fn images(n: usize) -> Dataset {
        let schema = Schema {
            input: InputSchema::Image { channels: 1, height: 6, width: 6 },
            target: Target { name: "y".into(), task: Task::Classification { labels: vec!["a".into(), "b".into()] } },
        };
        let xs = (0..n * 36).map(|i| ((i * 31) % 97) as f32 / 97.0).collect();
        Dataset::new(schema, xs, Targets::Classes((0..n).map(|i| (i % 2) as u32).collect())).unwrap()
    }

    fn augmenter(data: &Dataset) -> Augmenter {
        let t: Vec<Transform> = serde_yaml::from_str(
            "[{kind: rotate, degrees: 20}, {kind: translate, fraction: 0.2}, {kind: hflip}, {kind: noise, std: 0.05}, \
             {kind: cutout}]",
        )
        .unwrap();
        Augmenter::new(&t, "k", &data.schema().input, 9).unwrap()
    }

    /// Every batch of an epoch as (rows, inputs, targets).
    fn run(loader: &Loader<'_>, epoch: usize, skip: usize) -> Vec<(Vec<usize>, Vec<f32>, Vec<u32>)> {
        let order = loader.order(Some(&mut rng(3, "shuffle")));
        std::thread::scope(|s| {
            loader
                .epoch(s, epoch, &order, skip, &Device::Cpu)
                .map(|b| {
                    let b = b.unwrap();
                    let xs = b.batch.inputs.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                    (b.rows, xs, b.batch.targets.to_vec1::<u32>().unwrap())
                })
                .collect()
        })
    }

    #[test]
    fn the_same_batches_with_any_number_of_workers() {
        let data = images(50);
        let one = run(&Loader::new(&data, 8, false, Some(augmenter(&data)), 0, 1), 1, 0);
        for (workers, prefetch) in [(1, 1), (3, 2), (8, 4)] {
            let many = run(&Loader::new(&data, 8, false, Some(augmenter(&data)), workers, prefetch), 1, 0);
            assert_eq!(many, one, "{workers} workers");
        }
        // Resuming at batch 4 gives the rest of the same epoch.
        let rest = run(&Loader::new(&data, 8, false, Some(augmenter(&data)), 3, 2), 1, 4);
        assert_eq!(rest, one[4..]);
        // Another epoch draws anew.
        let second = run(&Loader::new(&data, 8, false, Some(augmenter(&data)), 2, 2), 2, 0);
        assert_eq!(second.iter().map(|b| &b.0).collect::<Vec<_>>(), one.iter().map(|b| &b.0).collect::<Vec<_>>());
        assert_ne!(second, one);
    }

    #[test]
    fn labels_and_shapes_are_kept() {
        let data = images(50);
        let loader = Loader::new(&data, 8, false, Some(augmenter(&data)), 2, 2);
        let plain = Loader::new(&data, 8, false, None, 2, 2);
        let order = loader.order(None);
        std::thread::scope(|s| {
            let (mut augmented, mut seen) = (0, 0);
            for (a, p) in loader.epoch(s, 1, &order, 0, &Device::Cpu).zip(plain.epoch(s, 1, &order, 0, &Device::Cpu)) {
                let (a, p) = (a.unwrap(), p.unwrap());
                assert_eq!(a.batch.inputs.dims(), p.batch.inputs.dims());
                assert_eq!(&a.batch.inputs.dims()[1..], &[1, 6, 6]);
                assert_eq!(a.batch.targets.to_vec1::<u32>().unwrap(), p.batch.targets.to_vec1::<u32>().unwrap());
                let want: Vec<u32> = a.rows.iter().map(|&i| (i % 2) as u32).collect();
                assert_eq!(a.batch.targets.to_vec1::<u32>().unwrap(), want);
                let x = a.batch.inputs.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let y = p.batch.inputs.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                augmented += usize::from(x != y);
                seen += 1;
            }
            assert_eq!(seen, 7);
            assert_eq!(augmented, 7);
        });
    }

    #[test]
    fn drop_last_drops_the_short_batch() {
        let data = images(50);
        let keep = Loader::new(&data, 8, false, None, 1, 1);
        let drop = Loader::new(&data, 8, true, None, 1, 1);
        assert_eq!((keep.batches(), drop.batches()), (7, 6));
        let sizes = |l: &Loader<'_>| run(l, 1, 0).iter().map(|b| b.0.len()).collect::<Vec<_>>();
        assert_eq!(sizes(&keep), [8, 8, 8, 8, 8, 8, 2]);
        assert_eq!(sizes(&drop), [8; 6]);
        // Without shuffling the order is the dataset's.
        assert_eq!(keep.order(None), (0..50).collect::<Vec<_>>());
    }

    struct Count(Arc<AtomicUsize>);
    impl Augmentation for Count {
        fn apply(&self, _: &mut [f32], _: &[usize], _: &mut Rng) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn workers_run_at_most_the_queue_bound_ahead() {
        let data = images(400);
        let count = Arc::new(AtomicUsize::new(0));
        let mut a = Augmenter::empty(&data.schema().input, 0);
        a.push(1.0, Box::new(Count(count.clone())));
        let (workers, prefetch, batch) = (2, 3, 4);
        let loader = Loader::new(&data, batch, false, Some(a), workers, prefetch);
        let order = loader.order(None);
        std::thread::scope(|s| {
            let mut epoch = loader.epoch(s, 1, &order, 0, &Device::Cpu);
            for taken in 1..=10 {
                epoch.next().unwrap().unwrap();
                // Give the workers time to fill their queues.
                std::thread::sleep(std::time::Duration::from_millis(20));
                let prepared = count.load(Ordering::SeqCst) / batch;
                // Each worker holds `prefetch` queued batches and one it is trying to hand over.
                assert!(prepared <= taken + workers * (prefetch + 1), "{prepared} prepared after {taken} taken");
                assert!(prepared >= taken);
            }
            // Dropping the iterator early stops the workers (the scope would hang otherwise).
        });
        assert!(count.load(Ordering::SeqCst) < 400);
    }
}
