#!/usr/bin/env bash
# Capture golden BGP wire vectors from real daemons (FRR, BIRD 2, GoBGP, ExaBGP).
#
# Usage:  sudo e2e/golden/capture.sh [scenario ...]      (default: all scenarios)
#         KEEP_WORK=1 sudo e2e/golden/capture.sh ...      (keep the temp dir with configs/logs)
#
# Every scenario creates its own pair of network namespaces (sartgold-<n>a / sartgold-<n>b)
# joined by one veth pair, starts one daemon in each, captures TCP/179 with tcpdump inside
# namespace "a", then stops exactly the PIDs it started and deletes exactly the namespaces
# it created (also on error / Ctrl-C via trap).  No traffic leaves those namespaces.
# Addresses: 198.18.<n>.1/24 + fd00:<n>::1/64 (side a), .2 / ::2 (side b).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VEC="$HERE/vectors"
FRR=/usr/lib/frr

if [[ $(id -u) -ne 0 ]]; then echo "must run as root" >&2; exit 1; fi
for b in ip tcpdump "$FRR/bgpd" "$FRR/zebra" vtysh bird birdc gobgpd gobgp exabgp python3; do
  command -v "$b" >/dev/null || { echo "missing $b" >&2; exit 1; }
done

WORK="$(mktemp -d /tmp/sartgold.XXXXXX)"
declare -a PIDS=()   # every process we started (ip netns exec execs, so $! is the daemon itself)
declare -a NSES=()   # every namespace we created

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

alive() {  # running and not a zombie (our children stay zombies until we wait for them)
  local st
  st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [[ -n "$st" && "$st" != Z ]]
}

stop_pid() {  # stop one PID we started: signal (default TERM), wait up to 5s, then KILL
  local pid=$1 sig=${2:-TERM} i
  alive "$pid" || return 0
  kill "-$sig" "$pid" 2>/dev/null || true
  for i in $(seq 50); do alive "$pid" || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

stop_all() {
  local i
  for ((i=${#PIDS[@]}-1; i>=0; i--)); do stop_pid "${PIDS[$i]}"; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  PIDS=()
  for ns in "${NSES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  NSES=()
}

cleanup() {
  local rc=$?
  stop_all
  if [[ "${KEEP_WORK:-0}" == 1 ]]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- helpers
# mkpair N  -> namespaces sartgold-Na / sartgold-Nb, veth "eth0" in each, deterministic MACs
mkpair() {
  local n=$1 a="sartgold-${1}a" b="sartgold-${1}b" hx
  hx=$(printf '%02x' "$n")
  for ns in "$a" "$b"; do
    if ip netns list | grep -q "^$ns\( \|$\)"; then
      # left over from an interrupted run: remove it only if nothing runs inside
      if [[ -z "$(ip netns pids "$ns" 2>/dev/null)" ]]; then
        log "removing stale empty namespace $ns"; ip netns del "$ns"
      else
        echo "namespace $ns exists and has processes: $(ip netns pids "$ns" | tr '\n' ' ') -- not touching it" >&2; exit 1
      fi
    fi
  done
  ip netns add "$a"; NSES+=("$a")
  ip netns add "$b"; NSES+=("$b")
  for ns in "$a" "$b"; do
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
    ip -n "$ns" link set lo up
  done
  ip -n "$a" link add eth0 address "02:00:00:00:$hx:01" type veth peer name eth0 address "02:00:00:00:$hx:02" netns "$b"
  ip -n "$a" addr add "198.18.$n.1/24" dev eth0
  ip -n "$b" addr add "198.18.$n.2/24" dev eth0
  ip -n "$a" addr add "fd00:$n::1/64" dev eth0 nodad
  ip -n "$b" addr add "fd00:$n::2/64" dev eth0 nodad
  ip -n "$a" link set eth0 up
  ip -n "$b" link set eth0 up
  sleep 1
}

# spawn NS LOGFILE cmd...   (background, PID recorded)
spawn() {
  local ns=$1 logf=$2; shift 2
  ip netns exec "$ns" "$@" >"$logf" 2>&1 &
  PIDS+=($!)
  LASTPID=$!
}

# wait_until TIMEOUT CMD...  (poll every 0.5 s)
wait_until() {
  local t=$1; shift
  local end=$((SECONDS + t))
  while ((SECONDS < end)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  log "timeout waiting for: $*"; return 1
}

start_tcpdump() {  # start_tcpdump NS PCAP
  spawn "$1" "$WORK/tcpdump-$1.log" tcpdump -i eth0 -s 0 -U -n -Z root -w "$2" 'tcp port 179'
  TCPDUMP_PID=$LASTPID
  wait_until 10 grep -q 'listening on' "$WORK/tcpdump-$1.log"
}

stop_tcpdump() {
  sleep 1
  stop_pid "$TCPDUMP_PID" INT
}

# FRR: start zebra + bgpd in NS with their own socket dir.  start_frr NS DIR BGPD_CONF
start_frr() {
  local ns=$1 d=$2 conf=$3
  mkdir -p "$d"; chmod 755 "$WORK" "$(dirname "$d")"; chown frr:frr "$d"
  printf 'hostname %s\n' "${ns}" >"$d/zebra.conf"
  spawn "$ns" "$d/zebra.out" "$FRR/zebra" -f "$d/zebra.conf" -i "$d/zebra.pid" \
      -z "$d/zserv.api" --vty_socket "$d" -A 127.0.0.1 -P 0 --log "file:$d/zebra.log"
  wait_until 10 test -S "$d/zserv.api"
  spawn "$ns" "$d/bgpd.out" "$FRR/bgpd" -f "$conf" -i "$d/bgpd.pid" \
      -z "$d/zserv.api" --vty_socket "$d" -A 127.0.0.1 -P 0 --log "file:$d/bgpd.log"
  wait_until 10 test -S "$d/bgpd.vty"
}
vty() { local ns=$1 d=$2; shift 2; ip netns exec "$ns" vtysh --vty_socket "$d" "$@"; }
frr_established() {  # frr_established NS DIR PEER
  vty "$1" "$2" -c "show bgp neighbor $3 json" | grep -q '"bgpState":"Established"'
}

start_bird() {  # start_bird NS DIR CONF
  local ns=$1 d=$2 conf=$3
  mkdir -p "$d"
  spawn "$ns" "$d/bird.out" bird -f -c "$conf" -s "$d/bird.ctl" -P "$d/bird.pid"
  wait_until 10 test -S "$d/bird.ctl"
}
bc() { local ns=$1 d=$2; shift 2; ip netns exec "$ns" birdc -s "$d/bird.ctl" "$@"; }
bird_established() { bc "$1" "$2" show protocols "$3" | grep -q Established; }

start_gobgp() {  # start_gobgp NS DIR CONF
  local ns=$1 d=$2 conf=$3
  mkdir -p "$d"
  spawn "$ns" "$d/gobgpd.out" gobgpd -f "$conf" -p --api-hosts 127.0.0.1:50051 --pprof-disable
  wait_until 10 ip netns exec "$ns" gobgp -u 127.0.0.1 -p 50051 global
}
gb() { local ns=$1; shift; ip netns exec "$ns" gobgp -u 127.0.0.1 -p 50051 "$@"; }
gobgp_established() { gb "$1" neighbor "$2" | grep -qi 'BGP state *= *established'; }

start_exabgp() {  # start_exabgp NS DIR CONF
  local ns=$1 d=$2 conf=$3
  mkdir -p "$d"
  spawn "$ns" "$d/exabgp.out" env exabgp.daemon.user=root exabgp.daemon.daemonize=false \
      exabgp.daemon.drop=false exabgp.api.cli=false exabgp.log.destination=stdout \
      exabgp.log.packets=true exabgp.api.ack=false exabgp.api.respawn=false \
      exabgp "$conf"
}

# finish SCEN PCAP NAME_A IP_A NAME_B IP_B : extract streams into vectors/SCEN
finish() {
  local scen=$1 pcap=$2 extra
  rm -rf "${VEC:?}/$scen"
  mkdir -p "$VEC/$scen"
  cp "$pcap" "$VEC/$scen/capture.pcap"
  extra="$(dirname "$pcap")/receiver_rib.txt"
  if [[ -f "$extra" ]]; then cp "$extra" "$VEC/$scen/"; fi
  python3 "$HERE/extract.py" "$VEC/$scen/capture.pcap" "$VEC/$scen" "$3=$4" "$5=$6"
  stop_all
  log "scenario $scen done"
}

# ---------------------------------------------------------------- scenarios
SCENARIOS=()
# 1: FRR (AS4200000001, 4-octet) <-> BIRD (AS65002), eBGP over IPv4, IPv4 unicast.
#    FRR: communities, large community, ext community, MED, prepend, origin incomplete,
#    aggregate-address as-set (AS_SET + AGGREGATOR), role (OTC), GR/LLGR, withdrawal,
#    ROUTE-REFRESH both ways (with enhanced route refresh BoRR/EoRR), then
#    "neighbor shutdown message" -> NOTIFICATION Cease/2 with shutdown communication.
SCENARIOS+=(s1_frr_bird_ebgp4)
s1_frr_bird_ebgp4() {
  local n=1 scen=s1_frr_bird_ebgp4 a=sartgold-1a b=sartgold-1b d="$WORK/s1"
  mkdir -p "$d/frr" "$d/bird"
  mkpair $n
  cat >"$d/frr/bgpd.conf" <<CONF
frr defaults traditional
hostname frr-s1
!
router bgp 4200000001
 bgp router-id 198.18.1.1
 no bgp ebgp-requires-policy
 no bgp network import-check
 no bgp default ipv4-unicast
 bgp graceful-restart
 bgp long-lived-graceful-restart stale-time 600
 neighbor 198.18.1.2 remote-as 65002
 neighbor 198.18.1.2 local-role provider
 address-family ipv4 unicast
  network 198.18.100.0/24 route-map RM100
  network 198.18.101.0/24 route-map RM101
  network 198.18.102.0/24
  aggregate-address 198.18.208.0/22 as-set
  neighbor 198.18.1.2 activate
 exit-address-family
!
route-map RM100 permit 10
 set community 65001:100 65001:200
 set large-community 4200000001:1:2
 set metric 10
!
route-map RM101 permit 10
 set as-path prepend 4200000001 4200000001
 set extcommunity rt 65001:7
 set origin incomplete
!
CONF
  cat >"$d/bird/bird.conf" <<CONF
log "$d/bird/bird.log" all;
router id 198.18.1.2;
protocol device { }
protocol static st1 {
  ipv4;
  route 198.18.200.0/24 blackhole { bgp_community.add((65002,300)); bgp_large_community.add((65002,4,5)); bgp_med = 20; };
  route 198.18.208.0/24 blackhole;
  route 198.18.209.0/24 blackhole { bgp_path.prepend(65003); };
}
protocol static st2 {
  ipv4;
  route 198.18.201.0/24 blackhole { bgp_ext_community.add((rt, 65002, 9)); };
}
protocol bgp frr {
  local 198.18.1.2 as 65002;
  neighbor 198.18.1.1 as 4200000001;
  passive on;
  graceful restart on;
  long lived graceful restart on;
  enable extended messages on;
  local role customer;
  ipv4 { import all; export where source = RTS_STATIC; };
}
CONF
  start_tcpdump $a "$d/cap.pcap"
  start_bird $b "$d/bird" "$d/bird/bird.conf"
  start_frr $a "$d/frr" "$d/frr/bgpd.conf"
  wait_until 60 frr_established $a "$d/frr" 198.18.1.2
  sleep 4
  # route refresh both ways (enhanced route refresh negotiated: BoRR/EoRR markers expected)
  vty $a "$d/frr" -c 'clear bgp ipv4 unicast 198.18.1.2 soft in'
  sleep 2
  bc $b "$d/bird" reload in frr
  sleep 2
  # withdrawals in both directions
  vty $a "$d/frr" -c 'conf t' -c 'router bgp 4200000001' -c 'address-family ipv4 unicast' -c 'no network 198.18.102.0/24'
  bc $b "$d/bird" disable st2
  sleep 4
  vty $a "$d/frr" -c 'conf t' -c 'router bgp 4200000001' -c 'neighbor 198.18.1.2 shutdown message "maintenance window"'
  sleep 2
  stop_tcpdump
  finish $scen "$d/cap.pcap" frr 198.18.1.1 bird 198.18.1.2
}

# 2: FRR (AS65001) <-> BIRD (AS4200000002), eBGP over IPv6 (fd00:2::/64), IPv6 unicast
#    (MP_REACH with global + link-local next hop) and IPv4 unicast with IPv6 next hop
#    (RFC 8950 extended next hop), MP_UNREACH withdrawals, End-of-RIB for both families.
SCENARIOS+=(s2_frr_bird_ipv6_enh)
s2_frr_bird_ipv6_enh() {
  local n=2 scen=s2_frr_bird_ipv6_enh a=sartgold-2a b=sartgold-2b d="$WORK/s2"
  mkdir -p "$d/frr" "$d/bird"
  mkpair $n
  cat >"$d/frr/bgpd.conf" <<CONF
frr defaults traditional
hostname frr-s2
!
router bgp 65001
 bgp router-id 198.18.2.1
 no bgp ebgp-requires-policy
 no bgp network import-check
 no bgp default ipv4-unicast
 bgp graceful-restart
 neighbor fd00:2::2 remote-as 4200000002
 neighbor fd00:2::2 capability extended-nexthop
 address-family ipv4 unicast
  network 198.18.110.0/24 route-map RMC
  network 198.18.111.0/24
  neighbor fd00:2::2 activate
 exit-address-family
 address-family ipv6 unicast
  network fd00:110::/64 route-map RMC
  network fd00:111::/64
  network fd00:112::/48
  neighbor fd00:2::2 activate
 exit-address-family
!
route-map RMC permit 10
 set community 65001:110 65001:111
 set large-community 65001:0:110
 set metric 110
!
CONF
  cat >"$d/bird/bird.conf" <<CONF
log "$d/bird/bird.log" all;
router id 198.18.2.2;
protocol device { }
protocol static st4 {
  ipv4;
  route 198.18.210.0/24 blackhole { bgp_community.add((65535,65281)); bgp_med = 210; };
}
protocol static st4w {
  ipv4;
  route 198.18.211.0/24 blackhole;
}
protocol static st6 {
  ipv6;
  route fd00:210::/64 blackhole { bgp_large_community.add((4200000002,6,6)); bgp_path.prepend(4200000002); };
  route fd00:212::/56 blackhole;
}
protocol static st6w {
  ipv6;
  route fd00:211::/64 blackhole;
}
protocol bgp frr {
  local fd00:2::2 as 4200000002;
  neighbor fd00:2::1 as 65001;
  interface "eth0";
  direct;
  passive on;
  graceful restart on;
  ipv4 { import all; export where source = RTS_STATIC; extended next hop on; };
  ipv6 { import all; export where source = RTS_STATIC; };
}
CONF
  start_tcpdump $a "$d/cap.pcap"
  start_bird $b "$d/bird" "$d/bird/bird.conf"
  start_frr $a "$d/frr" "$d/frr/bgpd.conf"
  wait_until 60 frr_established $a "$d/frr" fd00:2::2
  sleep 4
  vty $a "$d/frr" -c 'conf t' -c 'router bgp 65001' -c 'address-family ipv4 unicast' -c 'no network 198.18.111.0/24' \
      -c 'exit-address-family' -c 'address-family ipv6 unicast' -c 'no network fd00:111::/64'
  bc $b "$d/bird" disable st4w
  bc $b "$d/bird" disable st6w
  sleep 4
  stop_tcpdump
  finish $scen "$d/cap.pcap" frr fd00:2::1 bird fd00:2::2
}

# 3: BIRD (AS65003) <-> GoBGP (AS65004), eBGP over IPv4, IPv4 unicast, ADD-PATH negotiated
#    in both directions.  BIRD has two routes for 198.18.130.0/24 (two static protocols) and
#    sends both with distinct path identifiers; GoBGP sends two paths (identifier 1/2) for
#    198.18.140.0/24.  One path withdrawn each way (with path id), then GoBGP disables the
#    neighbor with a shutdown communication -> NOTIFICATION Cease/2 from GoBGP.
SCENARIOS+=(s3_bird_gobgp_addpath)
s3_bird_gobgp_addpath() {
  local n=3 scen=s3_bird_gobgp_addpath a=sartgold-3a b=sartgold-3b d="$WORK/s3"
  mkdir -p "$d/gobgp" "$d/bird"
  mkpair $n
  cat >"$d/gobgp/gobgpd.toml" <<CONF
[global.config]
  as = 65004
  router-id = "198.18.3.1"
  local-address-list = ["198.18.3.1"]
[[neighbors]]
  [neighbors.config]
    neighbor-address = "198.18.3.2"
    peer-as = 65003
  [neighbors.transport.config]
    local-address = "198.18.3.1"
  [neighbors.graceful-restart.config]
    enabled = true
    restart-time = 120
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
    [neighbors.afi-safis.mp-graceful-restart.config]
      enabled = true
    [neighbors.afi-safis.add-paths.config]
      receive = true
      send-max = 8
CONF
  cat >"$d/bird/bird.conf" <<CONF
log "$d/bird/bird.log" all;
router id 198.18.3.2;
protocol device { }
protocol static stA {
  ipv4;
  route 198.18.130.0/24 blackhole { bgp_community.add((65003,1)); };
  route 198.18.131.0/24 blackhole { bgp_large_community.add((65003,31,1)); };
}
protocol static stB {
  ipv4;
  route 198.18.130.0/24 blackhole { bgp_community.add((65003,2)); bgp_path.prepend(65033); };
}
protocol bgp gobgp {
  local 198.18.3.2 as 65003;
  neighbor 198.18.3.1 as 65004;
  passive on;
  graceful restart on;
  ipv4 { import all; export where source = RTS_STATIC; add paths on; };
}
CONF
  start_tcpdump $a "$d/cap.pcap"
  start_bird $b "$d/bird" "$d/bird/bird.conf"
  start_gobgp $a "$d/gobgp" "$d/gobgp/gobgpd.toml"
  wait_until 60 gobgp_established $a 198.18.3.2
  gb $a global rib add -a ipv4 198.18.140.0/24 identifier 1 origin igp nexthop 198.18.3.1 med 10 community 65004:1
  gb $a global rib add -a ipv4 198.18.140.0/24 identifier 2 origin egp nexthop 198.18.3.1 med 20 large-community 65004:2:2
  gb $a global rib add -a ipv4 198.18.141.0/24 identifier 7 origin incomplete nexthop 198.18.3.1 aspath 65044
  sleep 4
  bc $b "$d/bird" disable stB
  gb $a global rib del -a ipv4 198.18.140.0/24 identifier 2
  sleep 4
  gb $a neighbor 198.18.3.2 shutdown --reason "gobgp going down"
  sleep 2
  stop_tcpdump
  finish $scen "$d/cap.pcap" gobgp 198.18.3.1 bird 198.18.3.2
}

# 4: ExaBGP (AS65020) <-> FRR (AS65020), iBGP over IPv4, IPv4 + IPv6 unicast.
#    ExaBGP sends a crafted UPDATE with ORIGIN, AS_PATH (2 ASNs incl. a 4-octet one), MED,
#    LOCAL_PREF, COMMUNITIES (incl. NO_EXPORT), LARGE_COMMUNITY, EXTENDED_COMMUNITIES,
#    ORIGINATOR_ID, CLUSTER_LIST, ATOMIC_AGGREGATE, AGGREGATOR; IPv6 via MP_REACH over an
#    IPv4 session; API-driven announce/withdraw.  FRR sends iBGP routes with LOCAL_PREF.
SCENARIOS+=(s4_exabgp_frr_ibgp)
s4_exabgp_frr_ibgp() {
  local n=4 scen=s4_exabgp_frr_ibgp a=sartgold-4a b=sartgold-4b d="$WORK/s4"
  mkdir -p "$d/frr" "$d/exabgp"
  mkpair $n
  cat >"$d/frr/bgpd.conf" <<CONF
frr defaults traditional
hostname frr-s4
!
router bgp 65020
 bgp router-id 198.18.4.1
 no bgp network import-check
 no bgp default ipv4-unicast
 bgp graceful-restart
 neighbor 198.18.4.2 remote-as 65020
 neighbor 198.18.4.2 passive
 address-family ipv4 unicast
  network 198.18.120.0/24 route-map RMLP
  network 198.18.121.0/24
  neighbor 198.18.4.2 activate
 exit-address-family
 address-family ipv6 unicast
  network fd00:120::/64 route-map RMLP
  neighbor 198.18.4.2 activate
 exit-address-family
!
route-map RMLP permit 10
 set local-preference 200
 set community 65020:120
 set metric 5
!
CONF
  cat >"$d/exabgp/api.py" <<'PY'
import sys, time
def send(cmd):
    sys.stdout.write(cmd + "\n"); sys.stdout.flush()
time.sleep(1)
send("announce route 198.18.151.0/24 next-hop self origin egp local-preference 151 community [ 65020:151 ]")
send("announce route fd00:151::/64 next-hop fd00:4::2 local-preference 151")
time.sleep(8)
send("withdraw route 198.18.151.0/24")
send("withdraw route fd00:151::/64")
time.sleep(1)
send("announce route 198.18.152.0/24 next-hop 198.18.4.2 med 152 as-path [ 65152 ]")
sys.stdin.read()   # exit when exabgp closes our stdin
PY
  cat >"$d/exabgp/exabgp.conf" <<CONF
process announcer {
  run /usr/bin/python3 $d/exabgp/api.py;
  encoder text;
}
neighbor 198.18.4.1 {
  router-id 198.18.4.2;
  local-address 198.18.4.2;
  local-as 65020;
  peer-as 65020;
  hold-time 90;
  family {
    ipv4 unicast;
    ipv6 unicast;
  }
  capability {
    graceful-restart 120;
    route-refresh;
  }
  api {
    processes [ announcer ];
  }
  static {
    route 198.18.150.0/24 next-hop 198.18.4.2 origin igp as-path [ 65021 4200000021 ] med 150 local-preference 250 community [ 65020:150 65020:151 no-export ] large-community [ 65020:1:150 4200000021:2:3 ] extended-community [ target:65020:150 origin:198.18.4.2:7 ] originator-id 198.18.4.99 cluster-list [ 198.18.4.100 198.18.4.101 ] atomic-aggregate aggregator ( 65021:198.18.4.21 );
    route fd00:150::/64 next-hop fd00:4::2 origin igp local-preference 160 med 60 community [ 65020:6 ] large-community [ 65020:6:6 ];
  }
}
CONF
  start_tcpdump $a "$d/cap.pcap"
  start_frr $a "$d/frr" "$d/frr/bgpd.conf"
  start_exabgp $b "$d/exabgp" "$d/exabgp/exabgp.conf"
  wait_until 60 frr_established $a "$d/frr" 198.18.4.2
  sleep 12
  vty $a "$d/frr" -c 'conf t' -c 'router bgp 65020' -c 'address-family ipv4 unicast' -c 'no network 198.18.121.0/24'
  sleep 3
  stop_tcpdump
  finish $scen "$d/cap.pcap" frr 198.18.4.1 exabgp 198.18.4.2
}

# 5: FRR (AS65050, "dont-capability-negotiate": an OPEN without any optional parameter, i.e.
#    a 2-octet-only speaker) <-> BIRD (AS4200000005, 4-octet).  BIRD: OPEN My AS = 23456
#    (AS_TRANS), AS_PATH with AS_TRANS + AS4_PATH.  FRR: 2-octet AS_PATH with AS_TRANS +
#    AS4_PATH for 4-octet ASNs, aggregate as-set -> AS_SET, AGGREGATOR.
SCENARIOS+=(s5_frr_as2_bird_as4)
s5_frr_as2_bird_as4() {
  local n=5 scen=s5_frr_as2_bird_as4 a=sartgold-5a b=sartgold-5b d="$WORK/s5"
  mkdir -p "$d/frr" "$d/bird"
  mkpair $n
  cat >"$d/frr/bgpd.conf" <<CONF
frr defaults traditional
hostname frr-s5
!
router bgp 65050
 bgp router-id 198.18.5.1
 no bgp ebgp-requires-policy
 no bgp network import-check
 no bgp default ipv4-unicast
 neighbor 198.18.5.2 remote-as external
 neighbor 198.18.5.2 dont-capability-negotiate
 address-family ipv4 unicast
  network 198.18.160.0/24 route-map RM4
  network 198.18.161.0/24 route-map RM2
  aggregate-address 198.18.240.0/23 as-set
  neighbor 198.18.5.2 activate
 exit-address-family
!
route-map RM4 permit 10
 set as-path prepend 4200000099
!
route-map RM2 permit 10
 set as-path prepend 65055
 set community 65050:161
!
CONF
  cat >"$d/bird/bird.conf" <<CONF
log "$d/bird/bird.log" all;
router id 198.18.5.2;
protocol device { }
protocol static st {
  ipv4;
  route 198.18.240.0/24 blackhole;
  route 198.18.241.0/24 blackhole { bgp_path.prepend(65031); };
  route 198.18.242.0/24 blackhole { bgp_path.prepend(4200000031); bgp_community.add((65030,242)); };
}
protocol bgp frr {
  local 198.18.5.2 as 4200000005;
  neighbor 198.18.5.1 as 65050;
  passive on;
  ipv4 { import all; export where source = RTS_STATIC; };
}
CONF
  start_tcpdump $a "$d/cap.pcap"
  start_bird $b "$d/bird" "$d/bird/bird.conf"
  start_frr $a "$d/frr" "$d/frr/bgpd.conf"
  wait_until 60 frr_established $a "$d/frr" 198.18.5.2
  sleep 6
  stop_tcpdump
  finish $scen "$d/cap.pcap" frr 198.18.5.1 bird 198.18.5.2
}

# 6: FRR (AS65040) -> GoBGP (AS4200000041): 2000 IPv4 /24s (10.100.0.0/24 .. 10.107.207.0/24; NLRI only, never installed) in
#    two attribute groups, packed into large UPDATEs (4096-byte limit), then 200 withdrawn
#    (large classic withdrawn-routes field).  GoBGP sends IPv6 routes via MP_REACH (over an
#    IPv4 session) and withdraws one via MP_UNREACH.
SCENARIOS+=(s6_frr_gobgp_bulk)
s6_frr_gobgp_bulk() {
  local n=6 scen=s6_frr_gobgp_bulk a=sartgold-6a b=sartgold-6b d="$WORK/s6" i
  mkdir -p "$d/frr" "$d/gobgp"
  mkpair $n
  {
    cat <<CONF
frr defaults traditional
hostname frr-s6
!
router bgp 65040
 bgp router-id 198.18.6.1
 no bgp ebgp-requires-policy
 no bgp network import-check
 no bgp default ipv4-unicast
 bgp graceful-restart
 neighbor 198.18.6.2 remote-as 4200000041
 neighbor 198.18.6.2 passive
 address-family ipv4 unicast
CONF
    for i in $(seq 0 1999); do
      if ((i < 1000)); then echo "  network 10.$((100 + i / 256)).$((i % 256)).0/24 route-map RMA"
      else echo "  network 10.$((100 + i / 256)).$((i % 256)).0/24 route-map RMB"; fi
    done
    cat <<CONF
  neighbor 198.18.6.2 activate
 exit-address-family
 address-family ipv6 unicast
  neighbor 198.18.6.2 activate
 exit-address-family
!
route-map RMA permit 10
 set community 65040:1
!
route-map RMB permit 10
 set community 65040:2 65040:3
 set large-community 65040:2:3
 set metric 77
!
CONF
  } >"$d/frr/bgpd.conf"
  cat >"$d/gobgp/gobgpd.toml" <<CONF
[global.config]
  as = 4200000041
  router-id = "198.18.6.2"
  local-address-list = ["198.18.6.2"]
[[neighbors]]
  [neighbors.config]
    neighbor-address = "198.18.6.1"
    peer-as = 65040
  [neighbors.transport.config]
    local-address = "198.18.6.2"
  [neighbors.graceful-restart.config]
    enabled = true
    restart-time = 90
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
    [neighbors.afi-safis.mp-graceful-restart.config]
      enabled = true
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
    [neighbors.afi-safis.mp-graceful-restart.config]
      enabled = true
CONF
  start_tcpdump $a "$d/cap.pcap"
  start_frr $a "$d/frr" "$d/frr/bgpd.conf"
  start_gobgp $b "$d/gobgp" "$d/gobgp/gobgpd.toml"
  gb $b global rib add -a ipv6 fd00:170::/64 origin igp nexthop fd00:6::2 med 70 community 65041:70 large-community 4200000041:70:1
  gb $b global rib add -a ipv6 fd00:171::/48 origin igp nexthop fd00:6::2 aspath 4200000071,65071
  gb $b global rib add -a ipv4 198.18.171.0/24 origin igp nexthop 198.18.6.2 aggregator 4200000041:198.18.6.2
  wait_until 60 frr_established $a "$d/frr" 198.18.6.2
  sleep 8
  local args=(-c 'conf t' -c 'router bgp 65040' -c 'address-family ipv4 unicast')
  for i in $(seq 1800 1999); do args+=(-c "no network 10.$((100 + i / 256)).$((i % 256)).0/24"); done
  vty $a "$d/frr" "${args[@]}"
  gb $b global rib del -a ipv6 fd00:171::/48
  sleep 6
  stop_tcpdump
  finish $scen "$d/cap.pcap" frr 198.18.6.1 gobgp 198.18.6.2
}

# 7: ExaBGP (AS65060, "asn4 disable": 2-octet speaker) <-> GoBGP (AS4200000007).
#    GoBGP: OPEN My AS = 23456, AS_TRANS + AS4_PATH.  ExaBGP: configured AS path containing a
#    4-octet ASN -> AS_TRANS in AS_PATH + AS4_PATH; also AS4_AGGREGATOR.
SCENARIOS+=(s7_exabgp_as2_gobgp)
s7_exabgp_as2_gobgp() {
  local n=7 scen=s7_exabgp_as2_gobgp a=sartgold-7a b=sartgold-7b d="$WORK/s7"
  mkdir -p "$d/gobgp" "$d/exabgp"
  mkpair $n
  cat >"$d/gobgp/gobgpd.toml" <<CONF
[global.config]
  as = 4200000007
  router-id = "198.18.7.1"
  local-address-list = ["198.18.7.1"]
[[neighbors]]
  [neighbors.config]
    neighbor-address = "198.18.7.2"
    peer-as = 65060
  [neighbors.transport.config]
    local-address = "198.18.7.1"
    passive-mode = true
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
CONF
  cat >"$d/exabgp/exabgp.conf" <<CONF
neighbor 198.18.7.1 {
  router-id 198.18.7.2;
  local-address 198.18.7.2;
  local-as 65060;
  peer-as 23456;   # a 2-octet speaker sees the 4-octet peer as AS_TRANS
  hold-time 60;
  family {
    ipv4 unicast;
  }
  capability {
    asn4 disable;
  }
  static {
    route 198.18.180.0/24 next-hop 198.18.7.2 origin igp as-path [ 65060 4200000061 65062 ] med 18 community [ 65060:180 ];
    route 198.18.181.0/24 next-hop 198.18.7.2 origin igp as-path [ 65060 ] atomic-aggregate aggregator ( 4200000061:198.18.7.61 );
  }
}
CONF
  start_tcpdump $a "$d/cap.pcap"
  start_gobgp $a "$d/gobgp" "$d/gobgp/gobgpd.toml"
  gb $a global rib add -a ipv4 198.18.190.0/24 origin igp nexthop 198.18.7.1 aspath 4200000091,65092 community 65007:190
  gb $a global rib add -a ipv4 198.18.191.0/24 origin igp nexthop 198.18.7.1 aggregator 4200000007:198.18.7.1
  start_exabgp $b "$d/exabgp" "$d/exabgp/exabgp.conf"
  wait_until 60 gobgp_established $a 198.18.7.2
  sleep 4
  gb $a global rib del -a ipv4 198.18.191.0/24
  sleep 3
  stop_tcpdump
  finish $scen "$d/cap.pcap" gobgp 198.18.7.1 exabgp 198.18.7.2
}

# 8: FRR (AS65080) -> BIRD (AS65081), eBGP over IPv6, extended messages (RFC 8654)
#    negotiated: 2500 IPv4 /24s (RFC 8950 next hop) and 1000 IPv6 /48s with identical
#    attributes -> UPDATEs larger than 4096 bytes and MP_REACH attributes with the
#    extended-length flag.
SCENARIOS+=(s8_frr_bird_extmsg)
s8_frr_bird_extmsg() {
  local n=8 scen=s8_frr_bird_extmsg a=sartgold-8a b=sartgold-8b d="$WORK/s8" i
  mkdir -p "$d/frr" "$d/bird"
  mkpair $n
  {
    cat <<CONF
frr defaults traditional
hostname frr-s8
!
router bgp 65080
 bgp router-id 198.18.8.1
 no bgp ebgp-requires-policy
 no bgp network import-check
 no bgp default ipv4-unicast
 bgp graceful-restart
 neighbor fd00:8::2 remote-as 65081
 neighbor fd00:8::2 capability extended-nexthop
 address-family ipv4 unicast
CONF
    for i in $(seq 0 2499); do echo "  network 10.$((120 + i / 256)).$((i % 256)).0/24 route-map RMX"; done
    cat <<CONF
  neighbor fd00:8::2 activate
 exit-address-family
 address-family ipv6 unicast
CONF
    for i in $(seq 0 999); do printf '  network fd00:%x::/48 route-map RMX\n' $((0x8000 + i)); done
    cat <<CONF
  neighbor fd00:8::2 activate
 exit-address-family
!
route-map RMX permit 10
 set community 65080:1
 set large-community 65080:8:8
!
CONF
  } >"$d/frr/bgpd.conf"
  cat >"$d/bird/bird.conf" <<CONF
log "$d/bird/bird.log" all;
router id 198.18.8.2;
protocol device { }
protocol static st6 {
  ipv6;
  route fd00:280::/64 blackhole;
}
protocol bgp frr {
  local fd00:8::2 as 65081;
  neighbor fd00:8::1 as 65080;
  interface "eth0";
  direct;
  passive on;
  graceful restart on;
  enable extended messages on;
  ipv4 { import all; export none; extended next hop on; };
  ipv6 { import all; export where source = RTS_STATIC; };
}
CONF
  start_tcpdump $a "$d/cap.pcap"
  start_bird $b "$d/bird" "$d/bird/bird.conf"
  start_frr $a "$d/frr" "$d/frr/bgpd.conf"
  wait_until 60 frr_established $a "$d/frr" fd00:8::2
  sleep 8
  stop_tcpdump
  # tshark 4.0 refuses BGP messages > 4096 bytes, so keep BIRD's view (an independent decoder)
  # of what it received as a second oracle for mkexpected.py
  {
    bc $b "$d/bird" show route protocol frr count
    for p in 10.120.0.0/24 10.124.100.0/24 10.129.195.0/24 fd00:8000::/48 fd00:81f4::/48 fd00:83e7::/48; do
      bc $b "$d/bird" show route for $p protocol frr all
    done
  } >"$d/receiver_rib.txt"
  finish $scen "$d/cap.pcap" frr fd00:8::1 bird fd00:8::2
}

# 9: OPEN error: FRR (AS65090) is configured to expect remote-as 65099 but GoBGP (AS65091)
#    connects -> FRR answers the OPEN with NOTIFICATION 2/2 (Bad Peer AS) carrying data.
#    The session never establishes; the vector is the first TCP connection (OPEN [+KEEPALIVE]
#    + NOTIFICATION).
SCENARIOS+=(s9_gobgp_frr_open_error)
s9_gobgp_frr_open_error() {
  local n=9 scen=s9_gobgp_frr_open_error a=sartgold-9a b=sartgold-9b d="$WORK/s9"
  mkdir -p "$d/frr" "$d/gobgp"
  mkpair $n
  cat >"$d/frr/bgpd.conf" <<CONF
frr defaults traditional
hostname frr-s9
!
router bgp 65090
 bgp router-id 198.18.9.1
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 neighbor 198.18.9.2 remote-as 65099
 neighbor 198.18.9.2 passive
 address-family ipv4 unicast
  neighbor 198.18.9.2 activate
 exit-address-family
!
CONF
  cat >"$d/gobgp/gobgpd.toml" <<CONF
[global.config]
  as = 65091
  router-id = "198.18.9.2"
  local-address-list = ["198.18.9.2"]
[[neighbors]]
  [neighbors.config]
    neighbor-address = "198.18.9.1"
    peer-as = 65090
  [neighbors.transport.config]
    local-address = "198.18.9.2"
  [neighbors.timers.config]
    connect-retry = 5
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
CONF
  start_tcpdump $a "$d/cap.pcap"
  start_frr $a "$d/frr" "$d/frr/bgpd.conf"
  start_gobgp $b "$d/gobgp" "$d/gobgp/gobgpd.toml"
  sleep 8
  sleep 4
  stop_tcpdump
  finish $scen "$d/cap.pcap" frr 198.18.9.1 gobgp 198.18.9.2
}

# 10: BIRD (AS65100) <-> GoBGP (AS65101), eBGP over IPv6, IPv6 unicast with ADD-PATH both
#     ways: path identifiers inside MP_REACH_NLRI / MP_UNREACH_NLRI.
SCENARIOS+=(s10_bird_gobgp_addpath_v6)
s10_bird_gobgp_addpath_v6() {
  local n=10 scen=s10_bird_gobgp_addpath_v6 a=sartgold-10a b=sartgold-10b d="$WORK/s10"
  mkdir -p "$d/gobgp" "$d/bird"
  mkpair $n
  cat >"$d/gobgp/gobgpd.toml" <<CONF
[global.config]
  as = 65101
  router-id = "198.18.10.1"
  local-address-list = ["fd00:10::1"]
[[neighbors]]
  [neighbors.config]
    neighbor-address = "fd00:10::2"
    peer-as = 65100
  [neighbors.transport.config]
    local-address = "fd00:10::1"
  [neighbors.graceful-restart.config]
    enabled = true
    restart-time = 120
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
    [neighbors.afi-safis.mp-graceful-restart.config]
      enabled = true
    [neighbors.afi-safis.add-paths.config]
      receive = true
      send-max = 8
CONF
  cat >"$d/bird/bird.conf" <<CONF
log "$d/bird/bird.log" all;
router id 198.18.10.2;
protocol device { }
protocol static stA {
  ipv6;
  route fd00:1b0::/64 blackhole { bgp_community.add((65100,1)); };
  route fd00:1b1::/64 blackhole;
}
protocol static stB {
  ipv6;
  route fd00:1b0::/64 blackhole { bgp_community.add((65100,2)); bgp_path.prepend(65133); };
}
protocol bgp gobgp {
  local fd00:10::2 as 65100;
  neighbor fd00:10::1 as 65101;
  interface "eth0";
  direct;
  passive on;
  graceful restart on;
  ipv6 { import all; export where source = RTS_STATIC; add paths on; };
}
CONF
  start_tcpdump $a "$d/cap.pcap"
  start_bird $b "$d/bird" "$d/bird/bird.conf"
  start_gobgp $a "$d/gobgp" "$d/gobgp/gobgpd.toml"
  wait_until 60 gobgp_established $a fd00:10::2
  gb $a global rib add -a ipv6 fd00:1a0::/64 identifier 1 origin igp nexthop fd00:10::1 med 10 community 65101:1
  gb $a global rib add -a ipv6 fd00:1a0::/64 identifier 2 origin igp nexthop fd00:10::1 med 20 community 65101:2
  sleep 4
  bc $b "$d/bird" disable stB
  gb $a global rib del -a ipv6 fd00:1a0::/64 identifier 2
  sleep 4
  stop_tcpdump
  finish $scen "$d/cap.pcap" gobgp fd00:10::1 bird fd00:10::2
}

# 11: FRR (AS65110) <-> BIRD (AS65111), eBGP over IPv6 link, IPv4 (RFC 8950 next hop) + IPv6
#     unicast with ADD-PATH: BIRD sends two paths for 198.18.113.0/24 and fd00:113::/64;
#     FRR ("addpath-tx-all-paths") also originates the same prefixes and sends all its paths
#     (its own + BIRD's two, reflected) with FRR-allocated path identifiers.
SCENARIOS+=(s11_frr_bird_addpath_txall)
s11_frr_bird_addpath_txall() {
  local n=11 scen=s11_frr_bird_addpath_txall a=sartgold-11a b=sartgold-11b d="$WORK/s11"
  mkdir -p "$d/frr" "$d/bird"
  mkpair $n
  cat >"$d/frr/bgpd.conf" <<CONF
frr defaults traditional
hostname frr-s11
!
router bgp 65110
 bgp router-id 198.18.11.1
 no bgp ebgp-requires-policy
 no bgp network import-check
 no bgp default ipv4-unicast
 bgp graceful-restart
 neighbor fd00:11::2 remote-as 65111
 neighbor fd00:11::2 capability extended-nexthop
 address-family ipv4 unicast
  network 198.18.113.0/24
  network 198.18.114.0/24
  neighbor fd00:11::2 activate
  neighbor fd00:11::2 addpath-tx-all-paths
 exit-address-family
 address-family ipv6 unicast
  network fd00:113::/64
  neighbor fd00:11::2 activate
  neighbor fd00:11::2 addpath-tx-all-paths
 exit-address-family
!
CONF
  cat >"$d/bird/bird.conf" <<CONF
log "$d/bird/bird.log" all;
router id 198.18.11.2;
protocol device { }
protocol static s4a { ipv4; route 198.18.113.0/24 blackhole { bgp_community.add((65111,1)); }; }
protocol static s4b { ipv4; route 198.18.113.0/24 blackhole { bgp_community.add((65111,2)); bgp_path.prepend(65112); }; }
protocol static s6a { ipv6; route fd00:113::/64 blackhole { bgp_community.add((65111,1)); }; }
protocol static s6b { ipv6; route fd00:113::/64 blackhole { bgp_community.add((65111,2)); bgp_path.prepend(65112); }; }
protocol bgp frr {
  local fd00:11::2 as 65111;
  neighbor fd00:11::1 as 65110;
  interface "eth0";
  direct;
  passive on;
  graceful restart on;
  ipv4 { import all; export where source = RTS_STATIC; extended next hop on; add paths on; };
  ipv6 { import all; export where source = RTS_STATIC; add paths on; };
}
CONF
  start_tcpdump $a "$d/cap.pcap"
  start_bird $b "$d/bird" "$d/bird/bird.conf"
  start_frr $a "$d/frr" "$d/frr/bgpd.conf"
  wait_until 60 frr_established $a "$d/frr" fd00:11::2
  sleep 5
  bc $b "$d/bird" disable s4b
  bc $b "$d/bird" disable s6b
  vty $a "$d/frr" -c 'conf t' -c 'router bgp 65110' -c 'address-family ipv4 unicast' -c 'no network 198.18.114.0/24'
  sleep 4
  stop_tcpdump
  finish $scen "$d/cap.pcap" frr fd00:11::1 bird fd00:11::2
}

# ---------------------------------------------------------------- main
main() {
  local want=("$@") s ran=0
  ((${#want[@]})) || want=("${SCENARIOS[@]}")
  for s in "${want[@]}"; do
    if ! declare -F "$s" >/dev/null; then echo "unknown scenario $s (have: ${SCENARIOS[*]})" >&2; exit 1; fi
  done
  {
    echo "FRR:    $("$FRR/bgpd" --version 2>&1 | head -1)"
    echo "BIRD:   $(bird --version 2>&1 | head -1)"
    echo "GoBGP:  $(gobgpd --version 2>&1 | head -1)"
    echo "ExaBGP: $(exabgp --version 2>&1 | head -1)"
    echo "tcpdump: $(tcpdump --version 2>&1 | head -1)"
  } >"$VEC/VERSIONS.txt"
  for s in "${want[@]}"; do
    log "=== scenario $s"
    "$s"
    ran=$((ran + 1))
  done
  log "captured $ran scenario(s); now run: python3 $HERE/mkexpected.py"
}
main "$@"
