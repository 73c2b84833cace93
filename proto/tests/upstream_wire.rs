//! sart's `sart.v1` messages as its own .proto files lay them out (field numbers and types,
//! written here from those definitions), read by ours and ours read by them: an upstream `sart`
//! CLI, agent or `sart-cni` left on a node during an upgrade and our daemons understand each
//! other. Our additions (numbered from 100) are unknown fields to sart's decoder, skipped.

#![allow(clippy::unwrap_used)] // test code

use prost::Message;
use prost_types::Timestamp;
use proto::v1;

/// sart's layouts, field by field.
mod sart {
    use prost_types::Timestamp;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AddressFamily {
        #[prost(int32, tag = "1")]
        pub afi: i32,
        #[prost(int32, tag = "2")]
        pub safi: i32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MessageCounter {
        #[prost(uint32, tag = "1")]
        pub open: u32,
        #[prost(uint32, tag = "2")]
        pub update: u32,
        #[prost(uint32, tag = "3")]
        pub keepalive: u32,
        #[prost(uint32, tag = "4")]
        pub notification: u32,
        #[prost(uint32, tag = "5")]
        pub route_refresh: u32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Peer {
        #[prost(uint32, tag = "1")]
        pub asn: u32,
        #[prost(string, tag = "2")]
        pub address: String,
        #[prost(string, tag = "3")]
        pub router_id: String,
        #[prost(message, repeated, tag = "4")]
        pub families: Vec<AddressFamily>,
        #[prost(uint32, tag = "5")]
        pub hold_time: u32,
        #[prost(uint32, tag = "6")]
        pub keepalive_time: u32,
        #[prost(message, optional, tag = "7")]
        pub uptime: Option<Timestamp>,
        #[prost(message, optional, tag = "8")]
        pub send_counter: Option<MessageCounter>,
        #[prost(message, optional, tag = "9")]
        pub recv_counter: Option<MessageCounter>,
        #[prost(int32, tag = "10")]
        pub state: i32,
        #[prost(bool, tag = "11")]
        pub passive_open: bool,
        #[prost(string, tag = "12")]
        pub name: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AddPeerRequest {
        #[prost(message, optional, tag = "1")]
        pub peer: Option<Peer>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListNeighborResponse {
        #[prost(message, repeated, tag = "1")]
        pub peers: Vec<Peer>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AsSegment {
        #[prost(int32, tag = "1")]
        pub r#type: i32,
        #[prost(uint32, repeated, tag = "2")]
        pub elm: Vec<u32>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Path {
        #[prost(string, tag = "1")]
        pub nlri: String,
        #[prost(message, optional, tag = "2")]
        pub family: Option<AddressFamily>,
        #[prost(uint32, tag = "3")]
        pub origin: u32,
        #[prost(string, repeated, tag = "4")]
        pub next_hops: Vec<String>,
        #[prost(message, repeated, tag = "5")]
        pub segments: Vec<AsSegment>,
        #[prost(uint32, tag = "6")]
        pub local_pref: u32,
        #[prost(uint32, tag = "7")]
        pub med: u32,
        #[prost(uint32, tag = "8")]
        pub peer_asn: u32,
        #[prost(string, tag = "9")]
        pub peer_addr: String,
        #[prost(bool, tag = "10")]
        pub best: bool,
        #[prost(message, optional, tag = "11")]
        pub timestamp: Option<Timestamp>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ConfigureMultiPathRequest {
        #[prost(bool, tag = "1")]
        pub enable: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SartConf {}

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Args {
        #[prost(string, tag = "1")]
        pub container_id: String,
        #[prost(string, tag = "2")]
        pub netns: String,
        #[prost(string, tag = "3")]
        pub ifname: String,
        #[prost(string, repeated, tag = "4")]
        pub path: Vec<String>,
        #[prost(string, tag = "5")]
        pub args: String,
        #[prost(message, optional, tag = "6")]
        pub prev_result: Option<CniResult>,
        #[prost(message, optional, tag = "7")]
        pub conf: Option<SartConf>,
        #[prost(string, tag = "8")]
        pub data: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Interface {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub mac: String,
        #[prost(string, tag = "3")]
        pub sandbox: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct IpConf {
        #[prost(uint32, tag = "1")]
        pub interface: u32,
        #[prost(string, tag = "2")]
        pub address: String,
        #[prost(string, tag = "3")]
        pub gateway: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RouteConf {
        #[prost(string, tag = "1")]
        pub dst: String,
        #[prost(string, tag = "2")]
        pub gw: String,
        #[prost(int32, tag = "3")]
        pub mtu: i32,
        #[prost(int32, tag = "5")]
        pub advmss: i32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Dns {
        #[prost(string, repeated, tag = "1")]
        pub nameservers: Vec<String>,
        #[prost(string, tag = "2")]
        pub domain: String,
        #[prost(string, repeated, tag = "3")]
        pub search: Vec<String>,
        #[prost(string, repeated, tag = "4")]
        pub options: Vec<String>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CniResult {
        #[prost(message, repeated, tag = "1")]
        pub interfaces: Vec<Interface>,
        #[prost(message, repeated, tag = "2")]
        pub ips: Vec<IpConf>,
        #[prost(message, repeated, tag = "3")]
        pub routes: Vec<RouteConf>,
        #[prost(message, optional, tag = "4")]
        pub dns: Option<Dns>,
    }
}

/// `m` encoded and decoded as `T`.
fn as_<T: Message + Default>(m: &impl Message) -> T {
    T::decode(m.encode_to_vec().as_slice()).unwrap()
}

fn v4_unicast() -> (sart::AddressFamily, v1::AddressFamily) {
    (
        sart::AddressFamily { afi: 1, safi: 1 },
        v1::AddressFamily { afi: 1, safi: 1 },
    )
}

#[test]
fn sarts_add_peer_reaches_our_speaker() {
    // What sart's agent sends for a BGPPeer.
    let (fam, our_fam) = v4_unicast();
    let req = sart::AddPeerRequest {
        peer: Some(sart::Peer {
            name: "n1-65000-198.18.0.1".into(),
            asn: 65000,
            address: "198.18.0.1".into(),
            router_id: "198.18.0.1".into(),
            families: vec![fam],
            hold_time: 9,
            keepalive_time: 3,
            passive_open: true,
            ..Default::default()
        }),
    };
    let ours: v1::AddPeerRequest = as_(&req);
    let p = ours.peer.unwrap();
    assert_eq!(p.name, "n1-65000-198.18.0.1");
    assert_eq!((p.asn, p.address.as_str()), (65000, "198.18.0.1"));
    assert_eq!(p.router_id, "198.18.0.1");
    assert_eq!(p.families, vec![our_fam]);
    assert_eq!((p.hold_time, p.keepalive_time), (9, 3));
    assert!(p.passive_open);
}

#[test]
fn our_neighbours_read_by_sarts_cli() {
    let (fam, our_fam) = v4_unicast();
    let counter = v1::MessageCounter {
        open: 1,
        update: 7,
        keepalive: 30,
        notification: 0,
        route_refresh: 2,
    };
    let ours = v1::ListNeighborResponse {
        peers: vec![v1::Peer {
            name: "router0".into(),
            asn: 65001,
            address: "198.18.0.1".into(),
            router_id: "198.18.0.254".into(),
            families: vec![our_fam],
            hold_time: 90,
            keepalive_time: 30,
            uptime: Some(Timestamp {
                seconds: 1_796_000_000,
                nanos: 0,
            }),
            uptime_seconds: 42,
            send_counter: Some(counter),
            recv_counter: Some(counter),
            state: v1::peer::State::Established as i32,
            passive_open: false,
            negotiated_hold_time: 9,
            last_error: "hold timer expired".into(),
            prefixes_received: 12,
            ttl_security: true,
            ..Default::default()
        }],
    };
    let theirs: sart::ListNeighborResponse = as_(&ours);
    let p = &theirs.peers[0];
    assert_eq!(p.name, "router0");
    assert_eq!(p.asn, 65001);
    assert_eq!(p.address, "198.18.0.1");
    assert_eq!(p.router_id, "198.18.0.254");
    assert_eq!(p.families, vec![fam]);
    assert_eq!((p.hold_time, p.keepalive_time), (90, 30));
    assert_eq!(p.uptime.as_ref().map(|t| t.seconds), Some(1_796_000_000));
    assert_eq!(p.send_counter.as_ref().map(|c| c.update), Some(7));
    assert_eq!(p.recv_counter.as_ref().map(|c| c.route_refresh), Some(2));
    // sart's numbering: ESTABLISHED is 6 on both sides.
    assert_eq!(p.state, 6);
    // And back: what sart's daemon reports reads the same here.
    let back: v1::ListNeighborResponse = as_(&theirs);
    assert_eq!(back.peers[0].uptime, ours.peers[0].uptime);
    assert_eq!(back.peers[0].state, ours.peers[0].state);
    assert_eq!(back.peers[0].name, "router0");
}

#[test]
fn paths_both_ways() {
    let (fam, our_fam) = v4_unicast();
    let ours = v1::Path {
        nlri: "198.18.5.0/24".into(),
        family: Some(our_fam),
        origin: 0,
        next_hops: vec!["198.18.0.1".into()],
        segments: vec![v1::AsSegment {
            r#type: v1::as_segment::Type::AsSequence as i32,
            elm: vec![65001, 65002],
        }],
        local_pref: 100,
        med: 5,
        peer_asn: 65001,
        peer_addr: "198.18.0.1".into(),
        best: true,
        timestamp: Some(Timestamp {
            seconds: 1_796_000_000,
            nanos: 0,
        }),
        path_id: 3,
        communities: vec!["65001:100".into()],
        reason: "as-path".into(),
        multipath: true,
        ..Default::default()
    };
    let theirs: sart::Path = as_(&ours);
    assert_eq!(
        theirs,
        sart::Path {
            nlri: "198.18.5.0/24".into(),
            family: Some(fam),
            origin: 0,
            next_hops: vec!["198.18.0.1".into()],
            segments: vec![sart::AsSegment {
                r#type: 2,
                elm: vec![65001, 65002],
            }],
            local_pref: 100,
            med: 5,
            peer_asn: 65001,
            peer_addr: "198.18.0.1".into(),
            best: true,
            timestamp: Some(Timestamp {
                seconds: 1_796_000_000,
                nanos: 0,
            }),
        }
    );
    let back: v1::Path = as_(&theirs);
    assert_eq!(back.timestamp, ours.timestamp);
    assert_eq!(back.segments, ours.segments);
    assert_eq!(back.path_id, 0, "sart has no path id");
    let multipath = v1::ConfigureMultiPathRequest {
        enable: true,
        max_paths: 4,
    };
    assert!(as_::<sart::ConfigureMultiPathRequest>(&multipath).enable);
}

#[test]
fn cni_args_and_results_both_ways() {
    // What sart's sart-cni sends: CNI_ARGS as one string, no configuration.
    let theirs = sart::Args {
        container_id: "c0ffee".into(),
        netns: "/var/run/netns/cni-1".into(),
        ifname: "eth0".into(),
        path: vec!["/opt/cni/bin".into()],
        args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0".into(),
        ..Default::default()
    };
    let ours: v1::Args = as_(&theirs);
    assert_eq!(ours.container_id, "c0ffee");
    assert_eq!(ours.netns, "/var/run/netns/cni-1");
    assert_eq!(ours.ifname, "eth0");
    assert_eq!(ours.path, ["/opt/cni/bin"]);
    assert_eq!(ours.args, theirs.args);
    assert!(ours.args_map.is_empty() && ours.conf_json.is_empty());

    // Ours, read by sart's agent: the same raw CNI_ARGS.
    let ours = v1::Args {
        container_id: "c0ffee".into(),
        args: "K8S_POD_NAME=web-0".into(),
        args_map: [("K8S_POD_NAME".to_owned(), "web-0".to_owned())].into(),
        conf_json: r#"{"name":"sart-network"}"#.into(),
        ..Default::default()
    };
    let read: sart::Args = as_(&ours);
    assert_eq!(read.args, "K8S_POD_NAME=web-0");
    assert_eq!(read.conf, None);

    let result = v1::CniResult {
        interfaces: vec![v1::Interface {
            name: "eth0".into(),
            mac: "02:00:00:00:00:01".into(),
            sandbox: "/var/run/netns/cni-1".into(),
            mtu: 1500,
        }],
        ips: vec![v1::IpConf {
            interface: 0,
            address: "100.64.0.5/32".into(),
            gateway: "100.64.0.1".into(),
        }],
        routes: vec![v1::RouteConf {
            dst: "0.0.0.0/0".into(),
            gw: "100.64.0.1".into(),
            mtu: 1400,
            advmss: 1360,
        }],
        dns: Some(v1::Dns {
            nameservers: vec!["198.18.0.53".into()],
            ..Default::default()
        }),
    };
    let theirs: sart::CniResult = as_(&result);
    assert_eq!(theirs.interfaces[0].mac, "02:00:00:00:00:01");
    assert_eq!(theirs.ips[0].address, "100.64.0.5/32");
    assert_eq!(
        (theirs.routes[0].mtu, theirs.routes[0].advmss),
        (1400, 1360)
    );
    assert_eq!(
        theirs.dns.as_ref().map(|d| d.nameservers.clone()),
        Some(vec!["198.18.0.53".to_owned()])
    );
    let back: v1::CniResult = as_(&theirs);
    assert_eq!(back.routes, result.routes);
    assert_eq!(back.interfaces[0].mtu, 0, "sart reports no MTU");
}
