#!/usr/bin/env python3
"""Extract the two TCP byte streams of a BGP session from a pcap.

usage: extract.py CAPTURE.pcap OUTDIR NAME=IP NAME=IP

Reads a classic libpcap file (Ethernet, Linux cooked v1/v2 or raw IP link types),
reassembles each direction of each TCP connection on port 179 by sequence number
(retransmissions / overlapping segments are de-duplicated, out-of-order segments are
re-ordered), picks the connection that carried the BGP session (both directions start
with an OPEN; if several do, the one with most payload), and writes the payload stream
of each direction to OUTDIR/<sender>-to-<receiver>.bin.  The stream starts at the first
byte after the SYN, i.e. with the first OPEN, and is a concatenation of BGP messages.

Stdlib only.
"""
import ipaddress
import os
import struct
import sys

BGP_TYPES = {1: "OPEN", 2: "UPDATE", 3: "NOTIFICATION", 4: "KEEPALIVE", 5: "ROUTE-REFRESH"}


def read_pcap(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        raise SystemExit(f"{path}: not a classic pcap file (pcapng is not supported)")
    _, _, _, _, _, linktype = struct.unpack(e + "HHiIII", data[4:24])
    off = 24
    n = 0
    while off + 16 <= len(data):
        ts_s, ts_u, incl, orig = struct.unpack(e + "IIII", data[off:off + 16])
        off += 16
        pkt = data[off:off + incl]
        off += incl
        n += 1
        if incl != orig:
            print(f"warning: packet {n} truncated ({incl} of {orig} bytes)", file=sys.stderr)
        yield n, linktype, pkt


def l3(linktype, pkt):
    """return (ethertype, l3 bytes) or None"""
    if linktype == 1:  # Ethernet
        et = struct.unpack("!H", pkt[12:14])[0]
        p = pkt[14:]
        while et in (0x8100, 0x88A8):
            et = struct.unpack("!H", p[2:4])[0]
            p = p[4:]
        return et, p
    if linktype == 113:  # Linux cooked v1
        return struct.unpack("!H", pkt[14:16])[0], pkt[16:]
    if linktype == 276:  # Linux cooked v2
        return struct.unpack("!H", pkt[0:2])[0], pkt[20:]
    if linktype in (101, 12, 14):  # raw IP
        v = pkt[0] >> 4
        return (0x0800 if v == 4 else 0x86DD), pkt
    raise SystemExit(f"unsupported link type {linktype}")


def tcp_of(et, p):
    """return (src, dst, tcp bytes) or None"""
    if et == 0x0800:
        ihl = (p[0] & 0x0F) * 4
        total = struct.unpack("!H", p[2:4])[0]
        frag = struct.unpack("!H", p[6:8])[0]
        if p[9] != 6 or (frag & 0x3FFF):
            return None
        return (str(ipaddress.IPv4Address(p[12:16])), str(ipaddress.IPv4Address(p[16:20])),
                p[ihl:total])
    if et == 0x86DD:
        plen = struct.unpack("!H", p[4:6])[0]
        nh = p[6]
        src = str(ipaddress.IPv6Address(p[8:24]))
        dst = str(ipaddress.IPv6Address(p[24:40]))
        q = p[40:40 + plen]
        while nh in (0, 43, 60):  # hop-by-hop, routing, dst options
            nh, hlen = q[0], (q[1] + 1) * 8
            q = q[hlen:]
        if nh != 6:
            return None
        return src, dst, q
    return None


class Dir:
    def __init__(self):
        self.isn = None
        self.segs = []  # (seq, payload)
        self.fin = False

    def stream(self):
        if not self.segs:
            return b"", []
        base = (self.isn + 1) & 0xFFFFFFFF if self.isn is not None else min(s for s, _ in self.segs)
        rel = sorted((((s - base) & 0xFFFFFFFF), d) for s, d in self.segs)
        out = bytearray()
        problems = []
        for o, d in rel:
            end = o + len(d)
            if o > len(out):
                problems.append(f"gap of {o - len(out)} bytes at stream offset {len(out)}")
                break
            if end <= len(out):
                # pure retransmission: verify it matches what we have
                if bytes(out[o:end]) != d:
                    problems.append(f"retransmitted bytes differ at offset {o}")
                continue
            if o < len(out) and bytes(out[o:len(out)]) != d[:len(out) - o]:
                problems.append(f"overlapping bytes differ at offset {o}")
            out += d[len(out) - o:]
        return bytes(out), problems


def bgp_walk(b):
    """walk BGP headers only (marker/length/type); returns (counts, trailing_bytes)"""
    counts = {v: 0 for v in BGP_TYPES.values()}
    off = 0
    while off + 19 <= len(b):
        if b[off:off + 16] != b"\xff" * 16:
            raise ValueError(f"bad marker at offset {off}")
        ln, ty = struct.unpack("!HB", b[off + 16:off + 19])
        if ln < 19 or off + ln > len(b):
            break
        counts[BGP_TYPES.get(ty, f"TYPE{ty}")] = counts.get(BGP_TYPES.get(ty, f"TYPE{ty}"), 0) + 1
        off += ln
    return counts, len(b) - off


def main():
    if len(sys.argv) != 5:
        raise SystemExit(__doc__)
    pcap, outdir = sys.argv[1], sys.argv[2]
    names = {}
    for a in sys.argv[3:]:
        name, ip = a.split("=", 1)
        names[str(ipaddress.ip_address(ip))] = name

    conns = {}  # key: frozenset of endpoints -> {(src,sport,dst,dport): Dir}  (insertion = time order)
    for n, lt, pkt in read_pcap(pcap):
        r = l3(lt, pkt)
        if not r:
            continue
        t = tcp_of(*r)
        if not t:
            continue
        src, dst, tcp = t
        sport, dport, seq, ack, offflags = struct.unpack("!HHIIH", tcp[:14])
        doff = (offflags >> 12) * 4
        flags = offflags & 0x1FF
        if 179 not in (sport, dport):
            continue
        a, b = (src, sport), (dst, dport)
        key = frozenset((a, b))
        c = conns.setdefault(key, {})
        d = c.setdefault((a, b), Dir())
        payload = tcp[doff:]
        if flags & 0x02:  # SYN
            if d.isn is not None and d.isn != seq:
                # a new connection reusing the same 4-tuple: start over
                c.clear()
                d = c.setdefault((a, b), Dir())
            d.isn = seq
            seq = (seq + 1) & 0xFFFFFFFF
        if flags & 0x01:
            d.fin = True
        if payload:
            d.segs.append((seq, payload))

    candidates = []
    for key, c in conns.items():
        streams = {}
        for (a, b), d in c.items():
            s, problems = d.stream()
            streams[(a, b)] = (s, problems)
        ok = [k for k, (s, _) in streams.items() if len(s) >= 19 and s[:16] == b"\xff" * 16 and s[18] == 1]
        if len(ok) == 2:
            candidates.append((sum(len(s) for s, _ in streams.values()), len(candidates), streams))
        else:
            tot = sum(len(s) for s, _ in streams.values())
            if tot:
                print(f"note: ignoring TCP connection {sorted(key)} ({tot} payload bytes, no OPEN in both directions)",
                      file=sys.stderr)
    if not candidates:
        raise SystemExit("no TCP connection with an OPEN in both directions found")
    candidates.sort(key=lambda x: (-x[0], x[1]))
    if len(candidates) > 1:
        print(f"warning: {len(candidates)} BGP connections found; using the largest (earliest on a tie)",
              file=sys.stderr)
    streams = candidates[0][2]
    os.makedirs(outdir, exist_ok=True)
    rc = 0
    meta = {}
    for (a, b), (s, problems) in sorted(streams.items()):
        sn, rn = names.get(a[0], a[0]), names.get(b[0], b[0])
        fn = os.path.join(outdir, f"{sn}-to-{rn}.bin")
        with open(fn, "wb") as f:
            f.write(s)
        meta[os.path.basename(fn)] = {"src": a[0], "sport": a[1], "dst": b[0], "dport": b[1], "bytes": len(s)}
        counts, trailing = bgp_walk(s)
        for p in problems:
            print(f"ERROR {fn}: {p}", file=sys.stderr)
            rc = 1
        if trailing:
            print(f"warning {fn}: {trailing} trailing bytes (incomplete last message)", file=sys.stderr)
        print(f"{fn}: {len(s)} bytes  {a[0]}:{a[1]} -> {b[0]}:{b[1]}  " +
              " ".join(f"{k}={v}" for k, v in counts.items() if v))
    import json
    with open(os.path.join(outdir, "streams.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")
    sys.exit(rc)


if __name__ == "__main__":
    main()
