//! Restart on panic (docs/decisions/actor-supervision.md).
//!
//! actix's own `Supervisor` restarts an actor that *stops*; a panic in a handler instead
//! unwinds out of the actor's future, tokio drops the task, the mailbox closes and every
//! later `send` fails while `do_send` is silently dropped — the actor is gone for the
//! node's lifetime. `start` runs the actor's context under `catch_unwind`: after a panic
//! (or a stop while addresses remain) the context is restarted the way actix's
//! `Supervisor` does it — pending futures and intervals dropped, `Supervised::restarting`
//! called, then `started` again — with the same mailbox, so every `Addr` stays valid.
//! Only the message being handled is lost (its sender gets `MailboxError`).
//!
//! Invariant: an actor started here implements `restarting` so that whatever a panicking
//! handler left half-done cannot survive the restart.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use actix::dev::ContextFut;
use actix::{Actor, Addr, AsyncContext, Context, Supervised};

/// Starts `actor` on the current arbiter, restarted in place after a panic.
/// `name` labels the log line of a restart.
pub fn start<A>(name: &'static str, actor: A) -> Addr<A>
where
    A: Supervised + Actor<Context = Context<A>>,
{
    let ctx = Context::new();
    let addr = ctx.address();
    actix::spawn(Restarting { name, fut: ctx.into_future(actor) });
    addr
}

/// The actor's context future, polled under `catch_unwind`.
struct Restarting<A: Actor<Context = Context<A>>> {
    name: &'static str,
    fut: ContextFut<A, Context<A>>,
}

impl<A> Future for Restarting<A>
where
    A: Supervised + Actor<Context = Context<A>>,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let this = self.get_mut();
        match catch_unwind(AssertUnwindSafe(|| Pin::new(&mut this.fut).poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            // Stopped: restart while someone still holds an address (as actix's Supervisor).
            Ok(Poll::Ready(())) => restart(this, cx),
            Err(panic) => {
                tracing::error!(actor = this.name, panic = %message(&*panic), "actor panicked; restarting it");
                restart(this, cx)
            }
        }
    }
}

/// Restarts the context unless its mailbox is closed. The next poll is scheduled rather
/// than run here, so an actor that panics on every start cannot starve its thread.
fn restart<A>(this: &mut Restarting<A>, cx: &mut TaskContext<'_>) -> Poll<()>
where
    A: Supervised + Actor<Context = Context<A>>,
{
    if !this.fut.restart() {
        return Poll::Ready(());
    }
    cx.waker().wake_by_ref();
    Poll::Pending
}

/// The text of a panic payload.
fn message(panic: &(dyn Any + Send)) -> &str {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(s), _) => s,
        (_, Some(s)) => s,
        _ => "(no message)",
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use actix::prelude::*;

    use super::*;

    /// Counts `started` and `restarting` calls; `Boom` panics, `Count` answers a counter.
    #[derive(Default)]
    struct Probe {
        starts: Rc<AtomicU32>,
        restarts: Rc<AtomicU32>,
        handled: u32,
    }

    impl Actor for Probe {
        type Context = Context<Self>;
        fn started(&mut self, _: &mut Context<Self>) {
            self.starts.fetch_add(1, Ordering::Relaxed);
        }
    }

    impl Supervised for Probe {
        fn restarting(&mut self, _: &mut Context<Self>) {
            self.restarts.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[derive(Message)]
    #[rtype(result = "u32")]
    struct Count;

    #[derive(Message)]
    #[rtype(result = "()")]
    struct Boom;

    impl Handler<Count> for Probe {
        type Result = u32;
        fn handle(&mut self, _: Count, _: &mut Context<Self>) -> u32 {
            self.handled += 1;
            self.handled
        }
    }

    impl Handler<Boom> for Probe {
        type Result = ();
        fn handle(&mut self, _: Boom, _: &mut Context<Self>) {
            panic!("injected");
        }
    }

    #[actix_rt::test]
    async fn a_panicking_handler_restarts_the_actor_behind_the_same_address() {
        let probe = Probe::default();
        let (starts, restarts) = (Rc::clone(&probe.starts), Rc::clone(&probe.restarts));
        let addr = start("probe", probe);
        assert_eq!(addr.send(Count).await.ok(), Some(1));
        assert!(addr.send(Boom).await.is_err(), "the panicking message's sender learns it failed");
        // Queued behind the panic: handled by the restarted actor, through the same mailbox.
        addr.do_send(Count);
        assert_eq!(addr.send(Count).await.ok(), Some(3));
        assert!(addr.connected());
        assert_eq!((starts.load(Ordering::Relaxed), restarts.load(Ordering::Relaxed)), (2, 1));
    }

    #[actix_rt::test]
    async fn without_supervision_the_same_panic_closes_the_mailbox_for_good() {
        let addr = Probe::default().start();
        assert!(addr.send(Boom).await.is_err());
        assert!(addr.send(Count).await.is_err(), "the actor is gone: this is what `start` prevents");
    }
}
