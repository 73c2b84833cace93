//! One node of a cluster on this machine: a network namespace running `sartd bgp` and
//! `sartd agent`, peered with FRR as its top-of-rack router in another namespace, the agent
//! reaching the real API server through `cluster netns-api`.

use std::path::PathBuf;

use interop::frr::Frr;
use interop::process::Proc;
use interop::sartd::{Sartd, sartd_binary};
use interop::{BgpConfig, Family, Link, Neighbor, Netns};

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
    kubeconfig: String,
    agent_args: Vec<String>,
    agent: std::sync::Mutex<Option<Proc>>,
}

/// A kubeconfig that reaches the API server from inside `ns`.
pub fn netns_api(cluster: &testkube::Cluster, ns: &Netns) -> String {
    let out = std::process::Command::new(testkube::cluster_script())
        .arg("netns-api")
        .arg(cluster.dir())
        .args(["--netns", ns.name()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl NodeLab {
    /// FRR (AS `router_as`) peers with the node's address on link `n`; the speaker starts with
    /// no AS and no neighbours (the agent gives it both). `agent_args` are added to the agent's.
    pub fn start(
        cluster: &testkube::Cluster,
        name: &str,
        n: u8,
        router_as: u32,
        node_as: u32,
        agent_args: &[&str],
    ) -> NodeLab {
        let (node_ns, router_ns) = (Netns::new(name).unwrap(), Netns::new("tor").unwrap());
        let link = Link::veth(&node_ns, &router_ns, n).unwrap();
        let frr = Frr::start(
            &router_ns,
            "frr",
            BgpConfig::new(router_as, link.b.ipv4()).neighbor(Neighbor::new(
                link.a.ipv4().into(),
                node_as,
                &[Family::Ipv4Unicast],
            )),
        )
        .unwrap();
        let speaker = Sartd::start(&node_ns, "sartd", BgpConfig::new(0, link.a.ipv4())).unwrap();
        let kubeconfig = netns_api(cluster, &node_ns);
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
            kubeconfig,
            agent_args: agent_args.iter().map(|s| s.to_string()).collect(),
            agent: Default::default(),
        };
        lab.start_agent();
        lab
    }

    pub fn node_ip(&self) -> std::net::Ipv4Addr {
        self.link.a.ipv4()
    }

    pub fn router_ip(&self) -> std::net::Ipv4Addr {
        self.link.b.ipv4()
    }

    pub fn start_agent(&self) {
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
        let agent = self.node_ns.spawn("sartd-agent", &argv, &self.log).unwrap();
        *self.agent.lock().unwrap() = Some(agent);
    }

    /// Kills the agent at once (no grace period to finish anything).
    pub fn kill_agent(&self) {
        if let Some(mut a) = self.agent.lock().unwrap().take() {
            a.stop(std::time::Duration::ZERO);
        }
    }

    pub fn agent_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
