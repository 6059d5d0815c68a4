//! `View<T>`: an immutable snapshot published by one writer (an actor) and read
//! lock-free by many (request handlers on every worker thread).

use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};

/// A shared, atomically replaceable `Arc<T>`.
pub struct View<T>(Arc<ArcSwap<T>>);

impl<T> View<T> {
    /// A view holding `value`.
    pub fn new(value: T) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(value)))
    }

    /// The current snapshot; cheap, never blocks.
    pub fn load(&self) -> Guard<Arc<T>> {
        self.0.load()
    }

    /// The current snapshot as an owned `Arc` (for holding across `.await`).
    pub fn load_full(&self) -> Arc<T> {
        self.0.load_full()
    }

    /// Replaces the snapshot. Only the owning actor calls this.
    pub fn publish(&self, value: T) {
        self.0.store(Arc::new(value));
    }
}

impl<T> Clone for View<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T: Default> Default for View<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T> std::fmt::Debug for View<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("View(..)")
    }
}
