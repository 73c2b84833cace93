//! A mailbox for tasks that are many and mostly idle, like the session task of every configured
//! neighbour. tokio's channels allocate their first block of 32 slots when they are made (1.5 KB
//! for a session's commands); this one holds nothing until something is sent, and gives its
//! queue back once it is empty again. One sender, one receiver, unbounded: fit for commands that
//! are few and must never wait.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Poll, Waker};

struct State<T> {
    queue: VecDeque<T>,
    /// The receiver waiting for an item.
    waker: Option<Waker>,
    sender_gone: bool,
    receiver_gone: bool,
}

type Shared<T> = Arc<Mutex<State<T>>>;

fn lock<T>(s: &Shared<T>) -> MutexGuard<'_, State<T>> {
    // Every change under the lock is a single push, pop or flag: a poisoned state is sound.
    s.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) struct Sender<T>(Shared<T>);

pub(crate) struct Receiver<T>(Shared<T>);

pub(crate) fn mailbox<T>() -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Mutex::new(State {
        queue: VecDeque::new(),
        waker: None,
        sender_gone: false,
        receiver_gone: false,
    }));
    (Sender(shared.clone()), Receiver(shared))
}

impl<T> Sender<T> {
    /// Queues `item` for the receiver; `false` (and `item` dropped) when the receiver is gone.
    pub(crate) fn send(&self, item: T) -> bool {
        let waker = {
            let mut s = lock(&self.0);
            if s.receiver_gone {
                return false;
            }
            s.queue.push_back(item);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        true
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut s = lock(&self.0);
            s.sender_gone = true;
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Receiver<T> {
    /// The next item, in the order sent; `None` once the sender is gone and all is taken.
    /// Cancel-safe: an item leaves the queue only when it is returned.
    pub(crate) async fn recv(&mut self) -> Option<T> {
        std::future::poll_fn(|cx| {
            let mut s = lock(&self.0);
            if let Some(item) = s.queue.pop_front() {
                if s.queue.is_empty() {
                    s.queue = VecDeque::new();
                }
                return Poll::Ready(Some(item));
            }
            if s.sender_gone {
                return Poll::Ready(None);
            }
            match &mut s.waker {
                Some(w) => w.clone_from(cx.waker()),
                None => s.waker = Some(cx.waker().clone()),
            }
            Poll::Pending
        })
        .await
    }

    /// Moves every queued item to `out`, without waiting; `true` if the sender is gone, so
    /// nothing more will come.
    pub(crate) fn take_all(&mut self, out: &mut Vec<T>) -> bool {
        let mut s = lock(&self.0);
        out.extend(std::mem::take(&mut s.queue));
        s.sender_gone
    }

    #[cfg(test)]
    fn capacity(&self) -> usize {
        lock(&self.0).queue.capacity()
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let left = {
            let mut s = lock(&self.0);
            s.receiver_gone = true;
            std::mem::take(&mut s.queue)
        };
        // Items may own sockets: dropped outside the lock.
        drop(left);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn delivers_in_order_and_ends_after_the_sender() {
        let (tx, mut rx) = mailbox();
        assert_eq!(rx.capacity(), 0, "nothing held before the first item");
        for i in 0..5 {
            assert!(tx.send(i));
        }
        drop(tx);
        for i in 0..5 {
            assert_eq!(rx.recv().await, Some(i));
        }
        assert_eq!(rx.capacity(), 0, "the queue is given back once empty");
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn wakes_a_waiting_receiver() {
        let (tx, mut rx) = mailbox();
        let waiting = tokio::spawn(async move { (rx.recv().await, rx) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(tx.send("start"));
        let got = tokio::time::timeout(Duration::from_secs(5), waiting).await;
        let (first, mut rx) = got.expect("woken by the send").unwrap();
        assert_eq!(first, Some("start"));
        let waiting = tokio::spawn(async move { rx.recv().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(tx);
        let got = tokio::time::timeout(Duration::from_secs(5), waiting).await;
        assert_eq!(got.expect("woken by the drop").unwrap(), None);
    }

    /// A session selects on its mailbox among other things: losing the race must lose nothing.
    #[tokio::test]
    async fn an_abandoned_receive_loses_nothing() {
        let (tx, mut rx) = mailbox();
        tokio::select! {
            biased;
            () = std::future::ready(()) => {}
            _ = rx.recv() => unreachable!("the first branch is always ready"),
        }
        assert!(tx.send(7));
        tokio::select! {
            biased;
            () = std::future::ready(()) => {}
            _ = rx.recv() => unreachable!("the first branch is always ready"),
        }
        assert_eq!(rx.recv().await, Some(7));
    }

    #[test]
    fn takes_all_and_tells_when_the_sender_is_gone() {
        let (tx, mut rx) = mailbox();
        let mut got = Vec::new();
        assert!(!rx.take_all(&mut got));
        assert!(got.is_empty());
        tx.send(1);
        tx.send(2);
        assert!(!rx.take_all(&mut got));
        tx.send(3);
        drop(tx);
        assert!(rx.take_all(&mut got), "the sender is gone");
        assert_eq!(got, [1, 2, 3]);
        assert_eq!(rx.capacity(), 0);
    }

    #[test]
    fn sending_to_a_gone_receiver_fails_and_keeps_nothing() {
        let (tx, rx) = mailbox();
        let item = Arc::new(());
        assert!(tx.send(item.clone()));
        drop(rx);
        assert_eq!(
            Arc::strong_count(&item),
            1,
            "queued items are dropped with the receiver"
        );
        assert!(!tx.send(item.clone()));
        assert_eq!(Arc::strong_count(&item), 1);
    }
}
