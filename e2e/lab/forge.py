#!/usr/bin/env python3
"""Sends IPv4/UDP datagrams with a source address of our choosing over a raw socket, as a
process with CAP_NET_RAW in a pod can: test infrastructure for the lab's scenario on forged
packets (run with `lab pod-exec NODE POD_IP -- python3 forge.py ...`).

--bfd-down [--my-disc N] [--your-disc N]: the payload is a BFD control packet (RFC 5880 §4.1) in state Down,
as a router that lost its session would send; else a few bytes of text.
"""
import argparse
import ipaddress
import os
import socket
import struct


def checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def bfd_down(my_disc, your_disc):
    my_disc = my_disc or int.from_bytes(os.urandom(4), "big") | 1
    # Version 1, diag 0; state Down (1), no flags; detect mult 3; length 24; intervals 1 s.
    return struct.pack("!BBBBIIIII", 1 << 5, 1 << 6, 3, 24, my_disc, your_disc,
                       1_000_000, 1_000_000, 0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True)
    ap.add_argument("--dst", required=True)
    ap.add_argument("--dport", type=int, required=True)
    ap.add_argument("--sport", type=int, default=49152)
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--bfd-down", action="store_true")
    ap.add_argument("--your-disc", type=int, default=0)
    ap.add_argument("--my-disc", type=int, default=0, help="default: a random one")
    a = ap.parse_args()
    payload = bfd_down(a.my_disc, a.your_disc) if a.bfd_down else b"forged\n"
    src, dst = ipaddress.IPv4Address(a.src).packed, ipaddress.IPv4Address(a.dst).packed
    udp = struct.pack("!HHHH", a.sport, a.dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 255, socket.IPPROTO_UDP, 0,
                     src, dst)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    for _ in range(a.count):
        s.sendto(ip + udp, (a.dst, 0))
    print(f"sent {a.count} from {a.src} to {a.dst}:{a.dport}")


if __name__ == "__main__":
    main()
