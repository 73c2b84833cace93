//! One node of a cluster on this machine: a network namespace running `sartd bgp` and
//! `sartd agent`, peered with FRR as its top-of-rack router in another namespace, the agent
//! reaching the real API server through `cluster netns-api`. Tests and benchmarks share it.

use std::path::PathBuf;
use std::sync::Mutex;

use interop::frr::Frr;
use interop::process::Proc;
use interop::sartd::{Sartd, sartd_binary};
use interop::{BgpConfig, Family, Link, Neighbor, Netns};

use crate::{Cluster, Error, cluster_script};

pub struct NodeLab {
    pub name: String,
    pub node_ns: Netns,
    pub router_ns: Netns,
    pub link: Link,
    pub frr: Frr,
    pub speaker: Sartd,
    pub cni_socket: PathBuf,
    pub state_dir: PathBuf,
    pub log: PathBuf,
    pub router_as: u32,
    pub node_as: u32,
    kubeconfig: String,
    agent_args: Vec<String>,
    agent: Mutex<Option<Proc>>,
}

fn lab(e: interop::Error) -> Error {
    Error::Lab(e.to_string())
}

/// A kubeconfig that reaches the API server from inside `ns`.
pub fn netns_api(cluster: &Cluster, ns: &Netns) -> Result<String, Error> {
    let out = std::process::Command::new(cluster_script())
        .arg("netns-api")
        .arg(cluster.dir())
        .args(["--netns", ns.name()])
        .output()
        .map_err(|source| Error::Spawn {
            what: "e2e/controlplane/cluster netns-api",
            source,
        })?;
    if !out.status.success() {
        return Err(Error::Lab(format!(
            "cluster netns-api: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

impl NodeLab {
    /// FRR (AS `router_as`) peers with the node's address on link `n` (198.18.n.0/24); the
    /// speaker starts with no AS and no neighbours (the agent gives it both). `agent_args` are
    /// added to the agent's.
    pub fn start(
        cluster: &Cluster,
        name: &str,
        n: u8,
        router_as: u32,
        node_as: u32,
        agent_args: &[&str],
    ) -> Result<NodeLab, Error> {
        NodeLab::start_with(cluster, name, n, router_as, node_as, agent_args, |nb| nb)
    }

    /// [`NodeLab::start`] with FRR's neighbour (the node) adjusted by `router_side`: a
    /// password, graceful restart, BFD.
    pub fn start_with(
        cluster: &Cluster,
        name: &str,
        n: u8,
        router_as: u32,
        node_as: u32,
        agent_args: &[&str],
        router_side: impl FnOnce(Neighbor) -> Neighbor,
    ) -> Result<NodeLab, Error> {
        let node_ns = Netns::new(name).map_err(lab)?;
        let router_ns = Netns::new("tor").map_err(lab)?;
        let link = Link::veth(&node_ns, &router_ns, n).map_err(lab)?;
        let frr = Frr::start(
            &router_ns,
            "frr",
            BgpConfig::new(router_as, link.b.ipv4()).neighbor(router_side(Neighbor::new(
                link.a.ipv4().into(),
                node_as,
                &[Family::Ipv4Unicast],
            ))),
        )
        .map_err(lab)?;
        let speaker =
            Sartd::start(&node_ns, "sartd", BgpConfig::new(0, link.a.ipv4())).map_err(lab)?;
        let kubeconfig = netns_api(cluster, &node_ns)?;
        let cni_socket = node_ns.dir().join("cni.sock");
        let state_dir = node_ns.dir().join("cni-state");
        let log = node_ns.dir().join("agent.log");
        let lab = NodeLab {
            name: name.to_owned(),
            node_ns,
            router_ns,
            link,
            frr,
            speaker,
            cni_socket,
            state_dir,
            log,
            router_as,
            node_as,
            kubeconfig,
            agent_args: agent_args.iter().map(|s| s.to_string()).collect(),
            agent: Mutex::new(None),
        };
        lab.start_agent()?;
        Ok(lab)
    }

    pub fn node_ip(&self) -> std::net::Ipv4Addr {
        self.link.a.ipv4()
    }

    pub fn router_ip(&self) -> std::net::Ipv4Addr {
        self.link.b.ipv4()
    }

    /// Creates this node's Node object, labelled `bgp=<name>`, with the node's address as its
    /// InternalIP (written through the status subresource, as a kubelet would).
    pub async fn register(&self, client: &kube::Client) -> Result<(), Error> {
        use k8s_openapi::api::core::v1::Node;
        use kube::api::{Api, Patch, PatchParams, PostParams};
        let api: Api<Node> = Api::all(client.clone());
        let kube_err = |e: kube::Error| Error::Lab(format!("Node {}: {e}", self.name));
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": self.name, "labels": {"bgp": self.name}},
        }))
        .map_err(|e| Error::Lab(e.to_string()))?;
        api.create(&PostParams::default(), &node)
            .await
            .map_err(kube_err)?;
        let status = serde_json::json!({"status": {"addresses": [
            {"type": "InternalIP", "address": self.node_ip().to_string()}]}});
        api.patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .map_err(kube_err)?;
        Ok(())
    }

    /// A ClusterBGP (named as the node) that gives this node its AS and FRR as its peer.
    pub fn cluster_bgp(&self) -> String {
        format!(
            "apiVersion: sart.terassyi.net/v1alpha2\nkind: ClusterBGP\nmetadata: {{name: {n}}}\nspec:\n  nodeSelector: {{bgp: {n}}}\n  asnSelector: {{from: asn, asn: {}}}\n  routerIdSelector: {{from: internalAddress}}\n  speaker: {{path: \"{}\"}}\n  peers: [{{peerConfig: {{asn: {}, addr: {}}}}}]\n",
            self.node_as,
            self.speaker.api_addr(),
            self.router_as,
            self.router_ip(),
            n = self.name,
        )
    }

    /// `unix://` URL of the agent's CNI socket.
    pub fn cni_endpoint(&self) -> String {
        format!("unix://{}", self.cni_socket.display())
    }

    pub fn start_agent(&self) -> Result<(), Error> {
        let mut argv = vec![
            "env".to_string(),
            format!("KUBECONFIG={}", self.kubeconfig),
            sartd_binary().to_string_lossy().into_owned(),
            "agent".into(),
            format!("--node-name={}", self.name),
            format!("--speaker={}", self.speaker.api_addr()),
            "--resync=2".into(),
            format!("--cni-socket={}", self.cni_socket.display()),
            format!("--cni-state-dir={}", self.state_dir.display()),
        ];
        argv.extend(self.agent_args.iter().cloned());
        let agent = self
            .node_ns
            .spawn("sartd-agent", &argv, &self.log)
            .map_err(lab)?;
        *self.agent.lock().unwrap_or_else(|p| p.into_inner()) = Some(agent);
        Ok(())
    }

    /// Kills the agent at once (no grace period to finish anything).
    pub fn kill_agent(&self) {
        let taken = self.agent.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut a) = taken {
            a.stop(std::time::Duration::ZERO);
        }
    }

    /// Pod veths on the node (`veth` and 11 hex digits; the router link is `veth<n>`).
    pub fn pod_veths(&self) -> Result<usize, Error> {
        let out = self.node_ns.ip(&["-o", "link", "show"]).map_err(lab)?;
        Ok(out
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n))
            .filter(|n| n.len() == 15 && n.starts_with("veth"))
            .count())
    }

    /// The agent's attachment records on disk.
    pub fn records(&self) -> usize {
        std::fs::read_dir(&self.state_dir)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                    .count()
            })
            .unwrap_or(0)
    }

    pub fn agent_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for NodeLab {
    fn drop(&mut self) {
        // The speaker and router print their own logs; the agent's tell what it asked of them.
        if std::thread::panicking() {
            let log = self.agent_log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(200)..].join("\n");
            eprintln!(
                "[testkube] agent log of {} ({}), last 200 lines:\n{tail}",
                self.name,
                self.log.display()
            );
        }
    }
}
