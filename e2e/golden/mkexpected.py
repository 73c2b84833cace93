#!/usr/bin/env python3
"""Build vectors/<scenario>/expected.json from tshark's BGP dissector (independent oracle),
and cross-check it against (a) the intent derived from the daemon configurations written by
capture.sh (INTENT below) and (b) a header-only walk of the extracted .bin streams.

usage: mkexpected.py [scenario ...]       (default: every directory under vectors/)

Requires tshark.  Exit status 1 if any cross-check fails (the expected.json is still written,
with the failures listed in vectors/<scenario>/CHECK_FAILURES.txt).
"""
import ipaddress
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
VEC = os.path.join(HERE, "vectors")
sys.path.insert(0, HERE)
from extract import bgp_walk  # noqa: E402  (header-only walk: marker/length/type)

TYPES = {1: "OPEN", 2: "UPDATE", 3: "NOTIFICATION", 4: "KEEPALIVE", 5: "ROUTE-REFRESH"}
ORIGIN = {0: "igp", 1: "egp", 2: "incomplete"}
SEG = {1: "set", 2: "sequence", 3: "confed_sequence", 4: "confed_set"}
AFISAFI = {(1, 1): "ipv4-unicast", (2, 1): "ipv6-unicast", (1, 2): "ipv4-multicast", (2, 2): "ipv6-multicast"}
AS_TRANS = 23456
SAMPLE_LIMIT = 60  # above this many announced prefixes, emit announced_count + announced_sample

# ----------------------------------------------------------------------------- intent
# What we told the daemons to do (see capture.sh).  Only facts we are sure of from the
# configuration; every item is checked against the tshark-derived result.
INTENT = {
    "s1_frr_bird_ebgp4": {
        "description": "FRR AS4200000001 (4-octet) <-> BIRD AS65002, eBGP over IPv4, IPv4 unicast; "
                       "communities, large/extended communities, MED, prepend, origin incomplete, "
                       "aggregate as-set (AS_SET + AGGREGATOR), BGP role capability + OTC attribute (type 35), "
                       "GR/LLGR/FQDN/ext-message capabilities, classic withdrawals, IPv4 End-of-RIB, "
                       "ROUTE-REFRESH both ways with enhanced route refresh BoRR/EoRR markers, "
                       "NOTIFICATION Cease/2 with shutdown communication from FRR",
        "frr-to-bird.bin": {
            "open": {"my_as": AS_TRANS, "four_octet_as": 4200000001, "bgp_id": "198.18.1.1", "hold_time": 180},
            "caps_include": [1, 2, 6, 9, 64, 65, 70, 71, 73],
            "four_octet_as_negotiated": True, "add_path": False,
            "announced": {
                "198.18.100.0/24": {"origin": "igp", "as_path": [4200000001], "next_hop": "198.18.1.1", "med": 10,
                                    "communities": ["65001:100", "65001:200"], "large_communities": ["4200000001:1:2"]},
                "198.18.101.0/24": {"origin": "incomplete", "as_path": [4200000001, 4200000001, 4200000001],
                                    "ext_communities_count": 1},
                "198.18.102.0/24": {"as_path": [4200000001]},
                "198.18.208.0/22": {},
            },
            # 198.18.201.0/24 is BIRD's route that FRR reflected back to BIRD and withdrew after BIRD did
            "withdrawn": ["198.18.102.0/24", "198.18.201.0/24"],
            "end_of_rib": ["ipv4-unicast"],
            # vtysh keeps the double quotes of `shutdown message "..."`: they are on the wire.
            "notification": {"code": 6, "subcode": 2, "shutdown_message": '"maintenance window"'},
            # FRR "clear soft in" -> request; BIRD "reload in" -> FRR answers with BoRR (1) ... EoRR (2)
            "route_refresh": [{"afi": 1, "safi": 1, "subtype": 0}, {"afi": 1, "safi": 1, "subtype": 1},
                              {"afi": 1, "safi": 1, "subtype": 2}],
        },
        "bird-to-frr.bin": {
            "open": {"my_as": 65002, "four_octet_as": 65002, "bgp_id": "198.18.1.2"},
            "caps_include": [1, 2, 6, 9, 64, 65, 71],
            "four_octet_as_negotiated": True, "add_path": False,
            "announced": {
                "198.18.200.0/24": {"as_path": [65002], "next_hop": "198.18.1.2",
                                    "communities": ["65002:300"], "large_communities": ["65002:4:5"]},
                "198.18.201.0/24": {"ext_communities_count": 1},
                "198.18.208.0/24": {"as_path": [65002]},
                "198.18.209.0/24": {"as_path": [65002, 65003]},
            },
            "withdrawn": ["198.18.201.0/24"],
            "end_of_rib": ["ipv4-unicast"],
            "route_refresh": [{"afi": 1, "safi": 1, "subtype": 1}, {"afi": 1, "safi": 1, "subtype": 2},
                              {"afi": 1, "safi": 1, "subtype": 0}],
        },
    },
    "s2_frr_bird_ipv6_enh": {
        "description": "FRR AS65001 <-> BIRD AS4200000002, eBGP over IPv6 link; IPv6 unicast via MP_REACH with "
                       "global + link-local next hop, IPv4 unicast with IPv6 next hop (RFC 8950 extended next hop, "
                       "capability 5), MP_UNREACH withdrawals for both families, End-of-RIB for both families "
                       "(IPv4 EoR as empty UPDATE, IPv6 EoR as empty MP_UNREACH)",
        "frr-to-bird.bin": {
            "open": {"my_as": 65001, "four_octet_as": 65001, "bgp_id": "198.18.2.1", "hold_time": 180},
            "caps_include": [1, 2, 5, 64, 65, 70, 73],
            "four_octet_as_negotiated": True, "add_path": False,
            "announced": {
                "198.18.110.0/24": {"as_path": [65001], "next_hop": "fd00:2::1", "med": 110,
                                    "communities": ["65001:110", "65001:111"], "large_communities": ["65001:0:110"]},
                "198.18.111.0/24": {"as_path": [65001], "next_hop": "fd00:2::1"},
                "fd00:110::/64": {"as_path": [65001], "next_hop": "fd00:2::1", "med": 110},
                "fd00:111::/64": {"next_hop": "fd00:2::1"},
                "fd00:112::/48": {"next_hop": "fd00:2::1"},
            },
            "withdrawn_include": ["198.18.111.0/24", "fd00:111::/64"],
            "end_of_rib": ["ipv4-unicast", "ipv6-unicast"],
        },
        "bird-to-frr.bin": {
            "open": {"my_as": AS_TRANS, "four_octet_as": 4200000002, "bgp_id": "198.18.2.2"},
            "caps_include": [1, 2, 5, 64, 65],
            "four_octet_as_negotiated": True, "add_path": False,
            "announced": {
                "198.18.210.0/24": {"as_path": [4200000002], "next_hop": "fd00:2::2", "communities": ["65535:65281"]},
                "198.18.211.0/24": {"next_hop": "fd00:2::2"},
                "fd00:210::/64": {"as_path": [4200000002, 4200000002], "large_communities": ["4200000002:6:6"]},
                "fd00:211::/64": {"as_path": [4200000002]},
                "fd00:212::/56": {"as_path": [4200000002]},
            },
            "withdrawn": ["198.18.211.0/24", "fd00:211::/64"],
            "end_of_rib": ["ipv4-unicast", "ipv6-unicast"],
        },
    },
    "s3_bird_gobgp_addpath": {
        "description": "BIRD AS65003 <-> GoBGP AS65004, eBGP over IPv4, IPv4 unicast with ADD-PATH negotiated in both "
                       "directions (path identifiers in NLRI and withdrawn routes); two paths for one prefix each way, "
                       "one path withdrawn each way; NOTIFICATION Cease/2 with shutdown communication from GoBGP",
        "gobgp-to-bird.bin": {
            "open": {"my_as": 65004, "four_octet_as": 65004, "bgp_id": "198.18.3.1"},
            "caps_include": [1, 2, 65, 69],
            "four_octet_as_negotiated": True, "add_path": True,
            "announced": {
                "198.18.140.0/24#1": {"path_id": 1, "origin": "igp", "as_path": [65004], "med": 10,
                                      "communities": ["65004:1"], "next_hop": "198.18.3.1"},
                "198.18.140.0/24#2": {"path_id": 2, "origin": "egp", "as_path": [65004], "med": 20,
                                      "large_communities": ["65004:2:2"]},
                # GoBGP allocates its own (local) path id; the CLI "identifier 7" is not what goes on the wire
                "198.18.141.0/24#1": {"path_id": 1, "origin": "incomplete", "as_path": [65004, 65044]},
            },
            "withdrawn": ["198.18.140.0/24#2"],
            "notification": {"code": 6, "subcode": 2, "shutdown_message": "gobgp going down"},
        },
        "bird-to-gobgp.bin": {
            "open": {"my_as": 65003, "four_octet_as": 65003, "bgp_id": "198.18.3.2"},
            "caps_include": [1, 2, 64, 65, 69],
            "four_octet_as_negotiated": True, "add_path": True,
            "announced_prefixes": ["198.18.130.0/24", "198.18.130.0/24", "198.18.131.0/24"],
            "withdrawn_prefixes": ["198.18.130.0/24"],
            "end_of_rib": ["ipv4-unicast"],
        },
    },
    "s4_exabgp_frr_ibgp": {
        "description": "ExaBGP AS65020 <-> FRR AS65020, iBGP over IPv4, IPv4 + IPv6 unicast (IPv6 via MP_REACH over "
                       "an IPv4 session). ExaBGP sends a crafted UPDATE carrying ORIGIN, AS_PATH, NEXT_HOP, MED, "
                       "LOCAL_PREF, ATOMIC_AGGREGATE, AGGREGATOR, COMMUNITIES (incl. NO_EXPORT), ORIGINATOR_ID, "
                       "CLUSTER_LIST, EXTENDED_COMMUNITIES, LARGE_COMMUNITY; ExaBGP's MP_UNREACH withdrawal "
                       "carries ORIGIN/AS_PATH/LOCAL_PREF too. FRR sends iBGP routes with LOCAL_PREF and an empty AS_PATH",
        "exabgp-to-frr.bin": {
            "open": {"my_as": 65020, "four_octet_as": 65020, "bgp_id": "198.18.4.2", "hold_time": 90},
            "caps_include": [1, 2, 64, 65],
            "four_octet_as_negotiated": True, "add_path": False,
            "announced": {
                "198.18.150.0/24": {"origin": "igp", "as_path": [65021, 4200000021], "next_hop": "198.18.4.2",
                                    "med": 150, "local_pref": 250,
                                    "communities": ["65020:150", "65020:151", "65535:65281"],
                                    "large_communities": ["65020:1:150", "4200000021:2:3"],
                                    "ext_communities_count": 2, "atomic_aggregate": True,
                                    "aggregator": {"asn": 65021, "id": "198.18.4.21"},
                                    "originator_id": "198.18.4.99", "cluster_list": ["198.18.4.100", "198.18.4.101"]},
                "fd00:150::/64": {"origin": "igp", "as_path": [], "next_hop": "fd00:4::2", "med": 60, "local_pref": 160,
                                  "communities": ["65020:6"], "large_communities": ["65020:6:6"]},
                "198.18.151.0/24": {"origin": "egp", "local_pref": 151, "communities": ["65020:151"]},
                "fd00:151::/64": {"local_pref": 151, "next_hop": "fd00:4::2"},
                "198.18.152.0/24": {"med": 152, "as_path": [65152], "next_hop": "198.18.4.2"},
            },
            "withdrawn": ["198.18.151.0/24", "fd00:151::/64"],
            "end_of_rib": ["ipv4-unicast", "ipv6-unicast"],
        },
        "frr-to-exabgp.bin": {
            "open": {"my_as": 65020, "four_octet_as": 65020, "bgp_id": "198.18.4.1", "hold_time": 180},
            "caps_include": [1, 2, 64, 65, 70, 73],
            "four_octet_as_negotiated": True, "add_path": False,
            "announced": {
                "198.18.120.0/24": {"as_path": [], "local_pref": 200, "med": 5, "communities": ["65020:120"],
                                    "next_hop": "198.18.4.1"},
                "198.18.121.0/24": {"as_path": [], "local_pref": 100},
                "fd00:120::/64": {"local_pref": 200, "med": 5, "next_hop": "fd00:4::1"},
            },
            "withdrawn": ["198.18.121.0/24"],
            "end_of_rib": ["ipv4-unicast", "ipv6-unicast"],
        },
    },
    "s5_frr_as2_bird_as4": {
        "description": "FRR AS65050 with dont-capability-negotiate (OPEN without optional parameters: a 2-octet-only "
                       "speaker) <-> BIRD AS4200000005 (OPEN My AS 23456 + 4-octet capability). 4-octet AS NOT "
                       "negotiated: AS_PATH with AS_TRANS (23456) + AS4_PATH in both directions, AS_SET from FRR "
                       "aggregate as-set, AGGREGATOR",
        "frr-to-bird.bin": {
            "open": {"my_as": 65050, "bgp_id": "198.18.5.1", "hold_time": 180},
            "caps_exact": [],
            "four_octet_as_negotiated": False, "add_path": False,
            "announced": {
                "198.18.160.0/24": {"as_path": [65050, 4200000099], "next_hop": "198.18.5.1"},
                "198.18.161.0/24": {"as_path": [65050, 65055], "communities": ["65050:161"]},
                "198.18.240.0/23": {},
            },
        },
        "bird-to-frr.bin": {
            "open": {"my_as": AS_TRANS, "four_octet_as": 4200000005, "bgp_id": "198.18.5.2"},
            "caps_include": [1, 2, 65],
            "four_octet_as_negotiated": False, "add_path": False,
            "announced": {
                "198.18.240.0/24": {"as_path": [4200000005], "next_hop": "198.18.5.2"},
                "198.18.241.0/24": {"as_path": [4200000005, 65031]},
                "198.18.242.0/24": {"as_path": [4200000005, 4200000031], "communities": ["65030:242"]},
            },
            "withdrawn": [],
        },
    },
    "s6_frr_gobgp_bulk": {
        "description": "FRR AS65040 -> GoBGP AS4200000041: 2000 IPv4 /24 prefixes (10.100.0.0/24 .. 10.107.207.0/24) "
                       "in two attribute groups packed into large UPDATEs, then 200 withdrawn (10.107.8.0/24 .. "
                       "10.107.207.0/24) in large classic withdrawn-routes fields. GoBGP -> FRR: IPv6 routes via "
                       "MP_REACH over an IPv4 session (one withdrawn via MP_UNREACH), an IPv4 route with AGGREGATOR",
        "frr-to-gobgp.bin": {
            "open": {"my_as": 65040, "four_octet_as": 65040, "bgp_id": "198.18.6.1"},
            "four_octet_as_negotiated": True, "add_path": False,
            "announced_count": 2003,  # 2000 x 10.x/24 + GoBGP's 3 routes reflected back by FRR
            "announced": {
                "10.100.0.0/24": {"as_path": [65040], "communities": ["65040:1"], "next_hop": "198.18.6.1"},
                "10.103.231.0/24": {"communities": ["65040:1"]},
                "10.103.232.0/24": {"communities": ["65040:2", "65040:3"], "large_communities": ["65040:2:3"], "med": 77},
                "10.107.207.0/24": {"communities": ["65040:2", "65040:3"], "med": 77},
            },
            "withdrawn": [f"10.{100 + i // 256}.{i % 256}.0/24" for i in range(1800, 2000)] + ["fd00:171::/48"],
            "end_of_rib": ["ipv4-unicast", "ipv6-unicast"],
        },
        "gobgp-to-frr.bin": {
            "open": {"my_as": AS_TRANS, "four_octet_as": 4200000041, "bgp_id": "198.18.6.2"},
            "caps_include": [1, 2, 64, 65],
            "four_octet_as_negotiated": True, "add_path": False,
            "announced": {
                "fd00:170::/64": {"as_path": [4200000041], "next_hop": "fd00:6::2", "med": 70,
                                  "communities": ["65041:70"], "large_communities": ["4200000041:70:1"]},
                "fd00:171::/48": {"as_path": [4200000041, 4200000071, 65071], "next_hop": "fd00:6::2"},
                "198.18.171.0/24": {"as_path": [4200000041], "aggregator": {"asn": 4200000041, "id": "198.18.6.2"}},
            },
            "withdrawn": ["fd00:171::/48"],
        },
    },
    "s7_exabgp_as2_gobgp": {
        "description": "ExaBGP AS65060 with 'asn4 disable' (2-octet speaker) <-> GoBGP AS4200000007. 4-octet AS NOT "
                       "negotiated: GoBGP sends OPEN My AS 23456, AS_PATH with AS_TRANS + AS4_PATH, AGGREGATOR with "
                       "AS_TRANS + AS4_AGGREGATOR; ExaBGP sends a configured path containing a 4-octet ASN as "
                       "AS_TRANS + AS4_PATH and ATOMIC_AGGREGATE + AGGREGATOR/AS4_AGGREGATOR",
        "gobgp-to-exabgp.bin": {
            "open": {"my_as": AS_TRANS, "four_octet_as": 4200000007, "bgp_id": "198.18.7.1"},
            "caps_include": [1, 65],
            "four_octet_as_negotiated": False, "add_path": False,
            "announced": {
                "198.18.190.0/24": {"as_path": [4200000007, 4200000091, 65092], "communities": ["65007:190"],
                                    "next_hop": "198.18.7.1"},
                "198.18.191.0/24": {"as_path": [4200000007]},
            },
            "withdrawn": ["198.18.191.0/24"],
        },
        "exabgp-to-gobgp.bin": {
            "open": {"my_as": 65060, "bgp_id": "198.18.7.2", "hold_time": 60},
            "caps_exclude": [65],
            "four_octet_as_negotiated": False, "add_path": False,
            "announced": {
                "198.18.180.0/24": {"as_path": [65060, 4200000061, 65062], "med": 18, "communities": ["65060:180"],
                                    "next_hop": "198.18.7.2"},
                "198.18.181.0/24": {"as_path": [65060], "atomic_aggregate": True},
            },
            "withdrawn": [],
        },
    },
    "s8_frr_bird_extmsg": {
        "description": "FRR AS65080 -> BIRD AS65081, eBGP over IPv6 with extended messages (RFC 8654, capability 6) "
                       "negotiated: 2500 IPv4 /24s (10.120.0.0/24 .. 10.129.195.0/24, RFC 8950 IPv6 next hop) and "
                       "1000 IPv6 /48s (fd00:8000::/48 .. fd00:83e7::/48) with identical attributes, packed into "
                       "UPDATEs larger than 4096 bytes; MP_REACH_NLRI with the extended-length attribute flag",
        "frr-to-bird.bin": {
            "open": {"my_as": 65080, "four_octet_as": 65080, "bgp_id": "198.18.8.1"},
            "caps_include": [1, 2, 5, 6, 64, 65],
            "four_octet_as_negotiated": True, "add_path": False,
            "announced_count": 3501,  # + BIRD's fd00:280::/64 reflected back by FRR
            "announced": {
                "10.120.0.0/24": {"as_path": [65080], "next_hop": "fd00:8::1", "communities": ["65080:1"],
                                  "large_communities": ["65080:8:8"]},
                "10.129.195.0/24": {"as_path": [65080], "next_hop": "fd00:8::1"},
                "fd00:8000::/48": {"as_path": [65080], "next_hop": "fd00:8::1", "communities": ["65080:1"]},
                "fd00:83e7::/48": {"as_path": [65080], "next_hop": "fd00:8::1"},
            },
            "withdrawn": [],
            "end_of_rib": ["ipv4-unicast", "ipv6-unicast"],
        },
        "bird-to-frr.bin": {
            "open": {"my_as": 65081, "four_octet_as": 65081, "bgp_id": "198.18.8.2"},
            "caps_include": [1, 2, 5, 6, 64, 65],
            "four_octet_as_negotiated": True, "add_path": False,
            "announced": {"fd00:280::/64": {"as_path": [65081], "next_hop": "fd00:8::2"}},
            "withdrawn": [],
            "end_of_rib": ["ipv4-unicast", "ipv6-unicast"],
        },
    },
    "s9_gobgp_frr_open_error": {
        "description": "OPEN error: FRR AS65090 expects remote-as 65099, GoBGP AS65091 connects; FRR answers the OPEN "
                       "with NOTIFICATION 2/2 (Bad Peer AS) whose data is the 2-octet AS 65091. Session never "
                       "establishes; the vector is the first TCP connection",
        "frr-to-gobgp.bin": {
            "open": {"my_as": 65090, "four_octet_as": 65090, "bgp_id": "198.18.9.1"},
            "notification": {"code": 2, "subcode": 2, "data_hex": "fe43"},
            "withdrawn": [],
        },
        "gobgp-to-frr.bin": {
            "open": {"my_as": 65091, "four_octet_as": 65091, "bgp_id": "198.18.9.2"},
            "withdrawn": [],
        },
    },
    "s10_bird_gobgp_addpath_v6": {
        "description": "BIRD AS65100 <-> GoBGP AS65101, eBGP over IPv6, IPv6 unicast with ADD-PATH negotiated both "
                       "ways: path identifiers inside MP_REACH_NLRI and MP_UNREACH_NLRI; two paths for one prefix "
                       "from each side, one path withdrawn each way; BIRD sends global + link-local next hop, "
                       "GoBGP global only; IPv6 End-of-RIB",
        "gobgp-to-bird.bin": {
            "open": {"my_as": 65101, "four_octet_as": 65101, "bgp_id": "198.18.10.1"},
            "caps_include": [1, 2, 64, 65, 69],
            "four_octet_as_negotiated": True, "add_path": True,
            "announced": {
                "fd00:1a0::/64#1": {"path_id": 1, "as_path": [65101], "med": 10, "communities": ["65101:1"],
                                    "next_hop": "fd00:10::1"},
                "fd00:1a0::/64#2": {"path_id": 2, "as_path": [65101], "med": 20, "communities": ["65101:2"]},
            },
            "withdrawn": ["fd00:1a0::/64#2"],
            "end_of_rib": ["ipv6-unicast"],
        },
        "bird-to-gobgp.bin": {
            "open": {"my_as": 65100, "four_octet_as": 65100, "bgp_id": "198.18.10.2"},
            "caps_include": [1, 2, 64, 65, 69],
            "four_octet_as_negotiated": True, "add_path": True,
            "announced_prefixes": ["fd00:1b0::/64", "fd00:1b0::/64", "fd00:1b1::/64"],
            "withdrawn_prefixes": ["fd00:1b0::/64"],
            "end_of_rib": ["ipv6-unicast"],
        },
    },
    "s11_frr_bird_addpath_txall": {
        "description": "FRR AS65110 <-> BIRD AS65111, eBGP over IPv6 link, IPv4 (RFC 8950 IPv6 next hop) + IPv6 "
                       "unicast with ADD-PATH both ways. BIRD sends two paths per prefix; FRR with "
                       "addpath-tx-all-paths sends three paths per prefix (its own + BIRD's two reflected) with "
                       "FRR-allocated path ids, inside MP_REACH for both families; withdrawals with path ids in "
                       "MP_UNREACH for both families; EoR both families",
        "frr-to-bird.bin": {
            "open": {"my_as": 65110, "four_octet_as": 65110, "bgp_id": "198.18.11.1"},
            "caps_include": [1, 2, 5, 64, 65, 69, 73],
            "four_octet_as_negotiated": True, "add_path": True,
            "announced_prefixes": ["198.18.113.0/24"] * 3 + ["198.18.114.0/24"] + ["fd00:113::/64"] * 3,
            "withdrawn_prefixes": ["198.18.113.0/24", "198.18.114.0/24", "fd00:113::/64"],
            "end_of_rib": ["ipv4-unicast", "ipv6-unicast"],
        },
        "bird-to-frr.bin": {
            "open": {"my_as": 65111, "four_octet_as": 65111, "bgp_id": "198.18.11.2"},
            "caps_include": [1, 2, 5, 64, 65, 69],
            "four_octet_as_negotiated": True, "add_path": True,
            "announced_prefixes": ["198.18.113.0/24"] * 2 + ["fd00:113::/64"] * 2,
            "withdrawn_prefixes": ["198.18.113.0/24", "fd00:113::/64"],
            "end_of_rib": ["ipv4-unicast", "ipv6-unicast"],
        },
    },
}


# ----------------------------------------------------------------------------- PDML helpers
def fields(el, name):
    return [f for f in el.iter("field") if f.get("name") == name]


def first(el, name, default=None):
    for f in el.iter("field"):
        if f.get("name") == name:
            return f.get("show")
    return default


def prefix_items(container):
    """NLRI / withdrawn items: unnamed fields whose show is 'prefix/len[ PathId N ]'"""
    out = []
    for f in container.iter("field"):
        if f.get("name") != "":
            continue
        m = re.match(r"^(\S+/\d+)(?: PathId (\d+))?", f.get("show") or "")
        if not m:
            continue
        pid = m.group(2)
        pidf = first(f, "bgp.nlri_path_id")
        if pidf is not None:
            pid = pidf
        net = ipaddress.ip_network(m.group(1), strict=False)
        out.append((str(net), int(pid) if pid is not None else None))
    return out


def segments(attr):
    segs = []
    for s in fields(attr, "bgp.update.path_attribute.as_path_segment"):
        ty = int(first(s, "bgp.update.path_attribute.as_path_segment.type"))
        asns = []
        for f in s.iter("field"):
            if f.get("name") in ("bgp.update.path_attribute.as_path_segment.as4",
                                 "bgp.update.path_attribute.as_path_segment.as2"):
                asns.append(int(f.get("show")))
        segs.append({"type": SEG.get(ty, str(ty)), "asns": asns})
    return segs


def seg_len(segs):
    return sum(len(s["asns"]) if s["type"] == "sequence" else (1 if s["type"] == "set" else 0) for s in segs)


def merge_as4(as_path, as4_path):
    """RFC 6793 section 4.2.3 reconstruction"""
    n, n4 = seg_len(as_path), seg_len(as4_path)
    if n < n4:
        return as_path  # ignore AS4_PATH
    keep = n - n4
    out = []
    for s in as_path:
        if keep <= 0:
            break
        if s["type"] == "sequence":
            take = s["asns"][:keep]
            out.append({"type": "sequence", "asns": take})
            keep -= len(take)
        elif s["type"] == "set":
            out.append(s)
            keep -= 1
        else:
            out.append(s)
    out += as4_path
    # merge adjacent sequences
    merged = []
    for s in out:
        if merged and merged[-1]["type"] == "sequence" == s["type"]:
            merged[-1] = {"type": "sequence", "asns": merged[-1]["asns"] + s["asns"]}
        elif s["asns"] or s["type"] != "sequence":
            merged.append(s)
    return merged


def bytes_from_leaves(container):
    """reassemble the raw bytes of a container from its leaf fields' pos/size/value"""
    base, size = int(container.get("pos")), int(container.get("size"))
    buf = [None] * size
    for f in container.iter("field"):
        if f is container or list(f):
            continue
        v = f.get("value") or ""
        if f.get("unmaskedvalue") is not None:
            v = f.get("unmaskedvalue")
        p, s = int(f.get("pos")), int(f.get("size"))
        if len(v) != 2 * s:
            continue
        for i in range(s):
            if 0 <= p - base + i < size:
                buf[p - base + i] = int(v[2 * i:2 * i + 2], 16)
    if any(b is None for b in buf):
        return None
    return bytes(buf).hex()


def parse_open(m):
    caps = []
    ap = []
    for c in fields(m, "bgp.cap"):
        ty = int(first(c, "bgp.cap.type"))
        caps.append(ty)
        if ty == 69:
            afis = [int(f.get("show")) for f in fields(c, "bgp.cap.ap.afi")]
            safis = [int(f.get("show")) for f in fields(c, "bgp.cap.ap.safi")]
            srs = [int(f.get("show")) for f in fields(c, "bgp.cap.ap.sendreceive")]
            ap += list(zip(afis, safis, srs))
    o = {"version": int(first(m, "bgp.open.version")),
         "my_as": int(first(m, "bgp.open.myas")),
         "hold_time": int(first(m, "bgp.open.holdtime")),
         "bgp_id": first(m, "bgp.open.identifier")}
    as4 = first(m, "bgp.cap.4as")
    if as4 is not None:
        o["four_octet_as"] = int(as4)
    o["capability_codes"] = sorted(set(caps))
    return o, ap


def community_str(c):
    wk = first(c, "bgp.update.path_attribute.community_wellknown")
    if wk is not None:
        v = int(wk, 16)
        return f"{v >> 16}:{v & 0xFFFF}"
    return f"{first(c, 'bgp.update.path_attribute.community_as')}:{first(c, 'bgp.update.path_attribute.community_value')}"


def parse_update(m, as4_negotiated):
    """returns dict(withdrawn=[(pfx,pid)], announced=[(pfx,pid)], attrs=dict, eor=str|None)"""
    res = {"withdrawn": [], "announced": [], "attrs": {}, "eor": None}
    wr = fields(m, "bgp.update.withdrawn_routes")
    for w in wr:
        res["withdrawn"] += prefix_items(w)
    attrs = {}
    as_path = as4_path = None
    aggr = aggr4 = None
    attr_types = []
    mp_unreach_afisafi = None
    for a in m.iter("field"):
        if a.get("name") != "bgp.update.path_attribute":
            continue
        tc = int(first(a, "bgp.update.path_attribute.type_code"))
        attr_types.append(tc)
        if tc == 1:
            attrs["origin"] = ORIGIN[int(first(a, "bgp.update.path_attribute.origin"))]
        elif tc == 2:
            as_path = segments(a)
        elif tc == 17:
            as4_path = segments(a)
        elif tc == 3:
            attrs["next_hop"] = first(a, "bgp.update.path_attribute.next_hop")
        elif tc == 4:
            attrs["med"] = int(first(a, "bgp.update.path_attribute.multi_exit_disc"))
        elif tc == 5:
            attrs["local_pref"] = int(first(a, "bgp.update.path_attribute.local_pref"))
        elif tc == 6:
            attrs["atomic_aggregate"] = True
        elif tc == 7:
            aggr = {"asn": int(first(a, "bgp.update.path_attribute.aggregator_as")),
                    "id": first(a, "bgp.update.path_attribute.aggregator_origin")}
        elif tc == 18:
            asn = first(a, "bgp.update.path_attribute.as4_aggregator_as") or first(a, "bgp.update.path_attribute.aggregator_as")
            oid = first(a, "bgp.update.path_attribute.as4_aggregator_origin") or first(a, "bgp.update.path_attribute.aggregator_origin")
            aggr4 = {"asn": int(asn), "id": oid}
        elif tc == 8:
            cs = {community_str(c) for c in fields(a, "bgp.update.path_attribute.community")}
            # well-known communities are not wrapped in a "community" field
            for c in fields(a, "bgp.update.path_attribute.community_wellknown"):
                v = int(c.get("show"), 16)
                cs.add(f"{v >> 16}:{v & 0xFFFF}")
            attrs["communities"] = sorted(cs, key=lambda x: tuple(int(y) for y in x.split(":")))
        elif tc == 9:
            attrs["originator_id"] = first(a, "bgp.update.path_attribute.originator_id")
        elif tc == 10:
            attrs["cluster_list"] = [f.get("show") for f in a.iter("field")
                                     if f.get("name") in ("bgp.path_attribute.cluster_id",
                                                          "bgp.update.path_attribute.cluster_id")]
        elif tc == 16:
            ecs = fields(a, "bgp.ext_community")
            attrs["ext_communities_count"] = len(ecs)
            hexes = [bytes_from_leaves(e) for e in ecs]
            if all(h is not None and len(h) == 16 for h in hexes):
                attrs["ext_communities"] = sorted(hexes)
        elif tc == 32:
            lcs = []
            for lc in fields(a, "bgp.large_communities"):
                lcs.append(f"{first(lc, 'bgp.large_communities.ga')}:{first(lc, 'bgp.large_communities.ldp1')}:"
                           f"{first(lc, 'bgp.large_communities.ldp2')}")
            attrs["large_communities"] = sorted(set(lcs), key=lambda x: tuple(int(y) for y in x.split(":")))
        elif tc == 14:
            afi = int(first(a, "bgp.update.path_attribute.mp_reach_nlri.afi"))
            safi = int(first(a, "bgp.update.path_attribute.mp_reach_nlri.safi"))
            nh6 = first(a, "bgp.update.path_attribute.mp_reach_nlri.next_hop.ipv6")
            ll = first(a, "bgp.update.path_attribute.mp_reach_nlri.next_hop.ipv6.link_local")
            nh4 = first(a, "bgp.update.path_attribute.mp_reach_nlri.next_hop.ipv4")
            attrs["mp_next_hop"] = nh6 or nh4
            if ll:
                attrs["mp_link_local_next_hop"] = ll
            for c in fields(a, "bgp.update.path_attribute.mp_reach_nlri"):
                res["announced"] += [(p, pid, "mp") for p, pid in prefix_items(c)]
            attrs["_mp_afisafi"] = (afi, safi)
        elif tc == 15:
            afi = int(first(a, "bgp.update.path_attribute.mp_unreach_nlri.afi"))
            safi = int(first(a, "bgp.update.path_attribute.mp_unreach_nlri.safi"))
            items = []
            for c in fields(a, "bgp.update.path_attribute.mp_unreach_nlri"):
                items += prefix_items(c)
            res["withdrawn"] += items
            if not items:
                mp_unreach_afisafi = (afi, safi)
        else:
            attrs.setdefault("_other_types", []).append(tc)
    for nl in fields(m, "bgp.update.nlri"):
        res["announced"] += [(p, pid, "classic") for p, pid in prefix_items(nl)]
    # AS path reconciliation
    if as_path is not None:
        eff = as_path
        if as4_path is not None and not as4_negotiated:
            eff = merge_as4(as_path, as4_path)
            attrs["wire_as_path_segments"] = as_path
            attrs["wire_as4_path_segments"] = as4_path
        elif as4_path is not None:
            attrs["wire_as4_path_segments"] = as4_path  # present although AS4 negotiated (should be ignored)
        if any(s["type"] != "sequence" for s in eff):
            attrs["as_path_segments"] = eff
        else:
            attrs["as_path"] = [x for s in eff for x in s["asns"]]
    if aggr is not None:
        if aggr4 is not None and not as4_negotiated and aggr["asn"] == AS_TRANS:
            attrs["wire_aggregator"] = aggr
            aggr = aggr4
        attrs["aggregator"] = aggr
    res["attrs"] = attrs
    total_attr_len = int(first(m, "bgp.update.path_attributes.length", "0"))
    wlen = int(first(m, "bgp.update.withdrawn_routes.length", "0"))
    if wlen == 0 and total_attr_len == 0 and not res["announced"]:
        res["eor"] = "ipv4-unicast"
    elif mp_unreach_afisafi and attr_types == [15] and not res["withdrawn"] and not res["announced"] and wlen == 0:
        res["eor"] = AFISAFI.get(mp_unreach_afisafi, "%d-%d" % mp_unreach_afisafi)
    return res


def parse_bird_rib(path):
    """parse `birdc show route protocol X count` + `show route for P protocol X all` output"""
    if not os.path.exists(path):
        return None
    txt = open(path).read()
    m = re.search(r"Total: \d+ of (\d+) routes", txt) or re.search(r"^(\d+) of \d+ routes", txt, re.M)
    count = int(m.group(1))
    routes = {}
    cur = None
    for line in txt.splitlines():
        mm = re.match(r"^(\S+/\d+)\s+unicast", line)
        if mm:
            cur = str(ipaddress.ip_network(mm.group(1)))
            routes[cur] = {"origin": None, "as_path": [], "next_hop": None, "med": None, "local_pref": None,
                           "communities": [], "large_communities": [], "ext_communities_count": 0, "path_id": None}
            continue
        mm = re.match(r"^\s+BGP\.(\w+): ?(.*)$", line)
        if not (mm and cur):
            continue
        k, v = mm.group(1), mm.group(2).strip()
        e = routes[cur]
        if k == "origin":
            e["origin"] = v.lower()
        elif k == "as_path":
            e["as_path"] = [int(x) for x in v.split()]
        elif k == "next_hop":
            parts = v.split()
            e["next_hop"] = parts[0]
            if len(parts) > 1:
                e["link_local_next_hop"] = parts[1]
        elif k == "med":
            e["med"] = int(v)
        elif k == "community":
            e["communities"] = sorted((f"{a}:{b}" for a, b in re.findall(r"\((\d+),(\d+)\)", v)),
                                      key=lambda x: tuple(int(y) for y in x.split(":")))
        elif k == "large_community":
            e["large_communities"] = sorted((f"{a}:{b}:{c}" for a, b, c in
                                             re.findall(r"\((\d+), (\d+), (\d+)\)", v)),
                                            key=lambda x: tuple(int(y) for y in x.split(":")))
        elif k == "ext_community":
            e["ext_communities_count"] = len(re.findall(r"\(", v))
        # local_pref is deliberately ignored: on an eBGP session BIRD assigns it locally (not on the wire)
    return count, routes


def key(pfx, pid):
    return f"{pfx}#{pid}" if pid is not None else pfx


def sort_pfx(k):
    p = k.split("#")[0]
    n = ipaddress.ip_network(p)
    return (n.version, n.network_address.packed, n.prefixlen, int(k.split("#")[1]) if "#" in k else -1)


# ----------------------------------------------------------------------------- main work
def tshark_messages(pcap):
    out = subprocess.run(["tshark", "-r", pcap, "-Y", "bgp", "-T", "pdml",
                          "-o", "tcp.desegment_tcp_streams:TRUE"],
                         check=True, capture_output=True).stdout
    root = ET.fromstring(out)
    msgs = []
    for pkt in root.iter("packet"):
        src = first(pkt, "ip.src") or first(pkt, "ipv6.src")
        dst = first(pkt, "ip.dst") or first(pkt, "ipv6.dst")
        sport = int(first(pkt, "tcp.srcport"))
        dport = int(first(pkt, "tcp.dstport"))
        for proto in pkt.findall("proto"):
            if proto.get("name") != "bgp":
                continue
            ty = first(proto, "bgp.type")
            undecoded = ty is None
            if undecoded:
                # tshark 4.0 flags messages > 4096 bytes (RFC 8654 extended messages) as invalid and does not
                # dissect their body; the header (marker/length) and the type name in the summary are still there
                name = (proto.get("showname") or "").split(" - ")[-1].replace(" Message", "")
                ty = {v: k for k, v in TYPES.items()}[name]
            msgs.append({"src": (str(ipaddress.ip_address(src)), sport), "dst": (str(ipaddress.ip_address(dst)), dport),
                         "type": int(ty), "length": int(first(proto, "bgp.length")),
                         "el": proto, "undecoded": undecoded})
    return msgs


def build(scen):
    d = os.path.join(VEC, scen)
    streams = json.load(open(os.path.join(d, "streams.json")))
    msgs = tshark_messages(os.path.join(d, "capture.pcap"))
    intent = INTENT.get(scen, {})
    failures = []

    per = {}
    opens = {}
    for fn, st in streams.items():
        s, dd = (st["src"], st["sport"]), (st["dst"], st["dport"])
        per[fn] = [m for m in msgs if m["src"] == s and m["dst"] == dd]
        om = [m for m in per[fn] if m["type"] == 1]
        opens[fn] = parse_open(om[0]["el"]) if om else (None, [])
    fns = sorted(streams)
    as4_neg = all(opens[f][0] and 65 in opens[f][0]["capability_codes"] for f in fns)

    result = {"description": intent.get("description", scen), "directions": {}}
    for fn in fns:
        other = [f for f in fns if f != fn][0]
        ml = per[fn]
        # cross-check 1: tshark's message sequence == header walk of the extracted stream
        raw = open(os.path.join(d, fn), "rb").read()
        seq, off = [], 0
        while off + 19 <= len(raw):
            ln, ty = int.from_bytes(raw[off + 16:off + 18], "big"), raw[off + 18]
            seq.append((ty, ln))
            off += ln
        tseq = [(m["type"], m["length"]) for m in ml]
        if seq != tseq:
            failures.append(f"{fn}: tshark message sequence ({len(tseq)} msgs) != extracted stream ({len(seq)} msgs)")
        counts = {v: 0 for v in TYPES.values()}
        for m in ml:
            counts[TYPES[m["type"]]] += 1
        wc, trailing = bgp_walk(raw)
        if {k: v for k, v in wc.items() if v} != {k: v for k, v in counts.items() if v} or trailing:
            failures.append(f"{fn}: message counts differ: tshark {counts} vs stream {wc} (trailing {trailing})")

        op, ap = opens[fn]
        oop, oap = opens[other]
        send_fams = {(a, s) for a, s, sr in ap if sr in (2, 3)}
        recv_fams = {(a, s) for a, s, sr in oap if sr in (1, 3)}
        add_path = bool(send_fams & recv_fams)

        announced, withdrawn, eor, notif, rr = {}, set(), set(), None, []
        undecoded = [m for m in ml if m["undecoded"]]
        for m in ml:
            if m["type"] == 2 and m["undecoded"]:
                continue
            if m["type"] == 2:
                u = parse_update(m["el"], as4_neg)
                for p, pid in u["withdrawn"]:
                    withdrawn.add(key(p, pid))
                if u["eor"]:
                    eor.add(u["eor"])
                for p, pid, kind in u["announced"]:
                    a = u["attrs"]
                    e = {}
                    e["origin"] = a.get("origin")
                    if "as_path_segments" in a:
                        e["as_path_segments"] = a["as_path_segments"]
                    else:
                        e["as_path"] = a.get("as_path")
                    if kind == "mp":
                        e["next_hop"] = a.get("mp_next_hop")
                        if "mp_link_local_next_hop" in a:
                            e["link_local_next_hop"] = a["mp_link_local_next_hop"]
                    else:
                        e["next_hop"] = a.get("next_hop")
                    e["med"] = a.get("med")
                    e["local_pref"] = a.get("local_pref")
                    e["communities"] = a.get("communities", [])
                    e["large_communities"] = a.get("large_communities", [])
                    e["ext_communities_count"] = a.get("ext_communities_count", 0)
                    e["path_id"] = pid
                    # optional extensions (only when present)
                    for k in ("ext_communities", "atomic_aggregate", "aggregator", "originator_id", "cluster_list",
                              "wire_as_path_segments", "wire_as4_path_segments", "wire_aggregator"):
                        if k in a:
                            e[k] = a[k]
                    if "_other_types" in a:
                        e["other_attribute_types"] = sorted(a["_other_types"])
                    announced[key(p, pid)] = e
            elif m["type"] == 5:
                el = m["el"]
                rr.append({"afi": int(first(el, "bgp.route_refresh.afi")),
                           "safi": int(first(el, "bgp.route_refresh.safi")),
                           "subtype": int(first(el, "bgp.route_refresh.subtype", "0"))})
            elif m["type"] == 3:
                el = m["el"]
                notif = {"code": int(first(el, "bgp.notify.major_error"))}
                for f in el.iter("field"):
                    if (f.get("name") or "").startswith("bgp.notify.minor_error"):
                        notif["subcode"] = int(f.get("show"))
                comm = first(el, "bgp.notify.communication")
                if comm is not None:
                    notif["shutdown_message"] = comm
                elif m["length"] > 21:
                    raw_msg = bytes_from_leaves(el)
                    if raw_msg is not None:
                        notif["data_hex"] = raw_msg[42:]
                    else:
                        failures.append(f"{fn}: could not recover NOTIFICATION data bytes from tshark")

        dirn = {"sender": fn.split("-to-")[0], "message_counts": counts}
        if op:
            dirn["open"] = op
        dirn["add_path"] = add_path
        dirn["four_octet_as_negotiated"] = as4_neg
        rib_count = None
        if undecoded:
            rib = parse_bird_rib(os.path.join(d, "receiver_rib.txt"))
            if rib is None:
                failures.append(f"{fn}: {len(undecoded)} messages tshark could not decode and no receiver_rib.txt")
            else:
                # BIRD (the receiver) decoded everything; its per-protocol route count covers all UPDATEs,
                # its per-route attributes serve as samples for prefixes tshark could not see
                rib_count, rib_routes = rib
                for p, e in rib_routes.items():
                    if p not in announced:
                        announced[p] = e
                dirn["oracle"] = (f"tshark 4.0 could not dissect {len(undecoded)} message(s) longer than 4096 bytes; "
                                  "announced_count and the samples for prefixes in those messages come from the "
                                  "receiving BIRD's RIB (receiver_rib.txt); withdrawn/end_of_rib only reflect the "
                                  "tshark-decoded messages")
        keys = sorted(announced, key=sort_pfx)
        if rib_count is not None:
            dirn["announced_count"] = rib_count
            dirn["announced_sample"] = {k: announced[k] for k in keys}
        elif len(keys) > SAMPLE_LIMIT:
            dirn["announced_count"] = len(keys)
            want = set(intent.get(fn, {}).get("announced", {}))
            idx = sorted({0, len(keys) - 1} | {i for i, k in enumerate(keys) if k in want} |
                         set(range(0, len(keys), max(1, len(keys) // 10))))
            dirn["announced_sample"] = {keys[i]: announced[keys[i]] for i in idx}
        else:
            dirn["announced"] = {k: announced[k] for k in keys}
        dirn["withdrawn"] = sorted(withdrawn, key=sort_pfx)
        dirn["end_of_rib"] = sorted(eor)
        if notif:
            dirn["notification"] = notif
        if rr:
            dirn["route_refresh"] = rr  # optional extension: ROUTE-REFRESH messages in order
        result["directions"][fn] = dirn

        # cross-check 2: configuration intent
        it = intent.get(fn)
        if it is None:
            failures.append(f"{fn}: no intent defined")
            continue
        for k, v in it.get("open", {}).items():
            if op is None or op.get(k) != v:
                failures.append(f"{fn}: open.{k} = {op.get(k) if op else None}, intent {v}")
        for c in it.get("caps_include", []):
            if c not in op["capability_codes"]:
                failures.append(f"{fn}: capability {c} missing")
        for c in it.get("caps_exclude", []):
            if c in op["capability_codes"]:
                failures.append(f"{fn}: capability {c} unexpectedly present")
        if "caps_exact" in it and op["capability_codes"] != it["caps_exact"]:
            failures.append(f"{fn}: capabilities {op['capability_codes']} != {it['caps_exact']}")
        for k in ("four_octet_as_negotiated", "add_path"):
            if k in it and dirn[k] != it[k]:
                failures.append(f"{fn}: {k} = {dirn[k]}, intent {it[k]}")
        got_count = rib_count if rib_count is not None else len(announced)
        if "announced_count" in it and got_count != it["announced_count"]:
            failures.append(f"{fn}: {got_count} prefixes announced, intent {it['announced_count']}")
        for p, attrs in it.get("announced", {}).items():
            if p not in announced:
                failures.append(f"{fn}: {p} not announced")
                continue
            for k, v in attrs.items():
                if announced[p].get(k) != v:
                    failures.append(f"{fn}: {p}.{k} = {announced[p].get(k)!r}, intent {v!r}")
        if "announced_prefixes" in it:
            got = sorted(k.split("#")[0] for k in announced)
            if got != sorted(it["announced_prefixes"]):
                failures.append(f"{fn}: announced prefixes {got} != {it['announced_prefixes']}")
        if "withdrawn" in it and dirn["withdrawn"] != sorted(it["withdrawn"], key=sort_pfx):
            failures.append(f"{fn}: withdrawn {dirn['withdrawn']} != intent {it['withdrawn']}")
        for w in it.get("withdrawn_include", []):
            if w not in withdrawn:
                failures.append(f"{fn}: {w} not withdrawn")
        if "withdrawn_prefixes" in it:
            got = sorted(k.split("#")[0] for k in withdrawn)
            if got != sorted(it["withdrawn_prefixes"]):
                failures.append(f"{fn}: withdrawn prefixes {got} != {it['withdrawn_prefixes']}")
        if "end_of_rib" in it and dirn["end_of_rib"] != sorted(it["end_of_rib"]):
            failures.append(f"{fn}: end_of_rib {dirn['end_of_rib']} != intent {it['end_of_rib']}")
        if "notification" in it and notif != it["notification"]:
            failures.append(f"{fn}: notification {notif} != intent {it['notification']}")
        if "route_refresh" in it and rr != it["route_refresh"]:
            failures.append(f"{fn}: route_refresh {rr} != intent {it['route_refresh']}")
        if "notification" not in it and notif:
            failures.append(f"{fn}: unexpected notification {notif}")

    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    ff = os.path.join(d, "CHECK_FAILURES.txt")
    if failures:
        with open(ff, "w") as f:
            f.write("\n".join(failures) + "\n")
    elif os.path.exists(ff):
        os.remove(ff)
    return failures


def main():
    scens = sys.argv[1:] or sorted(x for x in os.listdir(VEC) if os.path.isdir(os.path.join(VEC, x)))
    bad = 0
    for s in scens:
        f = build(s)
        print(f"{s}: {'OK' if not f else 'FAIL'}")
        for x in f:
            print("   ", x)
        bad += bool(f)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
