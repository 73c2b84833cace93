//! Watched caches shared by the controller and the agent: a reflector store per kind whose
//! changes poke a channel, the wait for a complete first list, and tasks that stop with their
//! owner.

use kube::Resource;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use futures::StreamExt;

/// A spawned loop that is aborted when dropped, so a stopped controller or agent (a lost Lease,
/// a test's restart) leaves nothing running behind.
pub struct Task(pub tokio::task::JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What no decision reads and a cache need not hold: the server's field ownership and kubectl's
/// copy of the last applied object (together often larger than the rest of the object).
pub fn slim<K: Resource>(o: &mut K) {
    let meta = o.meta_mut();
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// A cache of `K` (as `cfg` selects) that pokes `changed` on every change; a full channel means a
/// poke is already pending.
pub fn watch<K>(
    api: Api<K>,
    cfg: watcher::Config,
    changed: mpsc::Sender<()>,
) -> (reflector::Store<K>, Task)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    // Every write gives a new resourceVersion: every change counts.
    watch_relevant(api, cfg, changed, |o: &K| o.meta().resource_version.clone())
}

/// As [`watch`], but pokes `changed` only when what `signature` picks out of an object changes,
/// an object comes or goes, or a (re)list completes: the status writes of agents then wake no one
/// whose decisions read only the spec.
pub fn watch_relevant<K, S>(
    api: Api<K>,
    cfg: watcher::Config,
    changed: mpsc::Sender<()>,
    signature: impl Fn(&K) -> S + Send + 'static,
) -> (reflector::Store<K>, Task)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    S: PartialEq + Send + 'static,
{
    use kube::ResourceExt;
    let (reader, writer) = reflector::store();
    let stream = reflected(api, cfg, writer, |_| {});
    let mut seen: std::collections::HashMap<(Option<String>, String), S> = Default::default();
    let task = tokio::spawn(stream.for_each(move |ev| {
        let poke = match ev {
            Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                let s = signature(&o);
                let key = (o.namespace(), o.name_any());
                let new = seen.get(&key) != Some(&s);
                seen.insert(key, s);
                new
            }
            Ok(watcher::Event::Delete(o)) => {
                seen.remove(&(o.namespace(), o.name_any()));
                true
            }
            // A relist: forget what was seen (objects deleted meanwhile), poke once it is done.
            Ok(watcher::Event::Init) => {
                seen.clear();
                false
            }
            Ok(watcher::Event::InitDone) => true,
            Err(_) => false,
        };
        if poke {
            let _ = changed.try_send(());
        }
        futures::future::ready(())
    }));
    (reader, Task(task))
}

/// A cache of `K` (as `cfg` selects, each object through [`slim`] and `trim`) that pokes no one:
/// what a decision reads, never a reason to make one, so it remembers nothing per object beyond
/// the object.
pub fn mirror<K>(
    api: Api<K>,
    cfg: watcher::Config,
    trim: impl FnMut(&mut K) + Send + 'static,
) -> (reflector::Store<K>, Task)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (reader, writer) = reflector::store();
    let stream = reflected(api, cfg, writer, trim);
    let task = tokio::spawn(stream.for_each(|_| futures::future::ready(())));
    (reader, Task(task))
}

/// The watch of `K` applied to `writer`'s store, each object through [`slim`] and `trim` first.
fn reflected<K>(
    api: Api<K>,
    cfg: watcher::Config,
    writer: reflector::store::Writer<K>,
    mut trim: impl FnMut(&mut K) + Send + 'static,
) -> impl futures::Stream<Item = watcher::Result<watcher::Event<K>>> + Send
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    reflector(
        writer,
        watcher(api, cfg).modify(move |o| {
            slim(o);
            trim(o);
        }),
    )
    .default_backoff()
}

/// Waits until a store holds the whole first list. Readiness wakes only a store's last waiter (a
/// kube Controller may poll the same store), so look again now and then instead of waiting once.
pub async fn ready<K>(store: &reflector::Store<K>) -> Result<(), reflector::store::WriterDropped>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    loop {
        let wait = store.wait_until_ready();
        if let Ok(r) = tokio::time::timeout(std::time::Duration::from_millis(200), wait).await {
            return r;
        }
    }
}
