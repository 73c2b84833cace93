"""A lab node: a network namespace and a mount namespace of its own, running containerd (with
runc) and the kubelet, as a kind node does in a container.

The mount namespace gives every node its own /etc/cni/net.d, /opt/cni/bin, /run/sart,
/var/lib/kubelet, /run/containerd, ... (bind mounts of directories under the lab's directory),
so that sart's DaemonSets use the same hostPaths on every node, as on real machines. Mounts of
the host reach a node (slave propagation); a node's never reach the host or the other nodes.

Test infrastructure: Python 3.11 standard library, util-linux (unshare, nsenter, mount),
containerd and runc from Debian, and the kubelet of sart-k8s (e2e/controlplane).
"""

import glob
import os
import signal
import subprocess
import time

CGROUP_FS = "/sys/fs/cgroup"
# Directories each node has of its own, as a real machine does.
NODE_DIRS = (
    "/etc/cni/net.d", "/opt/cni/bin", "/var/lib/cni", "/run/sart", "/var/lib/sart", "/run/netns",
    "/run/containerd", "/var/lib/containerd", "/var/lib/kubelet", "/var/log/pods",
    "/var/log/containers",
)
# The standard CNI plugins, as a node's CNI package installs them in /opt/cni/bin.
HOST_CNI_PLUGINS = "/usr/lib/cni"
SANDBOX_IMAGE = "docker.io/lab/pause:1"


def unescape_mountinfo(field):
    """A mountinfo path: space, tab, newline and backslash are written as \\NNN (octal)."""
    raw = os.fsencode(field)
    out, i = bytearray(), 0
    while i < len(raw):
        if raw[i] == 0x5C and i + 3 < len(raw) and raw[i + 1:i + 4].isdigit():
            out.append(int(raw[i + 1:i + 4], 8))
            i += 4
        else:
            out.append(raw[i])
            i += 1
    return os.fsdecode(bytes(out))


def is_mountpoint(path):
    """Whether something is mounted on path (os.path.ismount misses a bind mount from the same
    file system, such as a directory bound onto itself)."""
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        return any(unescape_mountinfo(line.split()[4]) == path for line in f)


def unmount_all(path):
    """Unmounts path until nothing is mounted there (mounts may be stacked)."""
    while is_mountpoint(path):
        if subprocess.run(["umount", path], capture_output=True).returncode != 0:
            return False
    return True


def run(argv, check=True, input=None):
    r = subprocess.run(argv, capture_output=True, text=True, input=input)
    if check and r.returncode != 0:
        raise SystemExit(f"lab: {' '.join(argv)} failed:\n{r.stderr or r.stdout}")
    return r.stdout


def host_dirs_file(lab_dir):
    """Where the lab lists the directories it had to make on the host (mount points)."""
    return os.path.join(lab_dir, "host-dirs")


def remove_host_dirs(lab_dir):
    """Removes what the lab made on the host for mount points, if it is still empty: nothing
    anyone else put there is touched (rmdir fails on a non-empty directory)."""
    try:
        with open(host_dirs_file(lab_dir)) as f:
            made = [line.strip() for line in f if line.strip()]
    except FileNotFoundError:
        return
    for top in made:
        for d, _, _ in sorted(os.walk(top), key=lambda w: len(w[0]), reverse=True):
            try:
                os.rmdir(d)
            except OSError:
                pass


class Node:
    def __init__(self, lab_dir, name, ip4, ip6):
        self.name, self.ip4, self.ip6 = name, ip4, ip6
        self.lab_dir = lab_dir
        self.dir = os.path.join(lab_dir, "nodes", name)
        self.root = os.path.join(self.dir, "root")
        self.mnt_dir = os.path.join(lab_dir, "mnt")
        self.mnt = os.path.join(self.mnt_dir, name)

    def p(self, *parts):
        return os.path.join(self.dir, *parts)

    def enter(self, argv):
        """argv inside the node: its network and mount namespaces."""
        return ["nsenter", f"--mount={self.mnt}", f"--net=/run/netns/{self.name}"] + argv

    def ctr(self, args, input=None, check=True):
        return run(self.enter(["ctr", "--address", "/run/containerd/containerd.sock", "-n", "k8s.io"]
                              + args), check=check, input=input)

    def containerd_serves(self):
        # `ctr version` prints its client part even when containerd does not answer.
        r = subprocess.run(self.enter(["ctr", "--address", "/run/containerd/containerd.sock",
                                       "version"]), capture_output=True)
        return r.returncode == 0

    # ------------------------------------------------------------------ mount namespace

    def make_mount_namespace(self):
        if not is_mountpoint(self.mnt_dir):
            os.makedirs(self.mnt_dir, exist_ok=True)
            # `unshare --mount=FILE` keeps the namespace by a bind mount on FILE, which must not
            # sit on a shared mount (the bind would propagate into the namespace it names).
            run(["mount", "--bind", self.mnt_dir, self.mnt_dir])
            run(["mount", "--make-private", self.mnt_dir])
        open(self.mnt, "w").close()
        run(["unshare", f"--mount={self.mnt}", "--propagation", "slave", "true"])
        # As on a systemd machine, / is a shared mount: containerd refuses a HostToContainer
        # hostPath (the agent's /var/run/netns: /var/run is a symlink, so the path's mount is
        # /) whose mount is neither shared nor slave.
        script = ["set -e", "mount --make-shared /"]
        for d in NODE_DIRS:
            src = os.path.join(self.root, d.lstrip("/"))
            os.makedirs(src, exist_ok=True)
            self.make_host_dir(d)
            script.append(f"mount --bind '{src}' '{d}'")
            # Shared inside the node: kubelet's HostToContainer mounts (the agent's view of
            # /run/netns) see what containerd mounts later.
            script.append(f"mount --make-shared '{d}'")
        run(["nsenter", f"--mount={self.mnt}", "sh", "-c", "\n".join(script)])
        bin_dir = os.path.join(self.root, "opt/cni/bin")
        for plugin in os.listdir(HOST_CNI_PLUGINS):
            dst = os.path.join(bin_dir, plugin)
            if not os.path.exists(dst):
                os.symlink(os.path.join(HOST_CNI_PLUGINS, plugin), dst)

    def make_host_dir(self, d):
        """A mount point on the host: made if missing, and listed so `down` removes it."""
        top = d
        while not os.path.exists(os.path.dirname(top)):
            top = os.path.dirname(top)
        if os.path.exists(top):
            return
        os.makedirs(d)
        with open(host_dirs_file(self.lab_dir), "a") as f:
            f.write(top + "\n")

    # ------------------------------------------------------------------ cgroups

    def cgroup_root(self):
        return f"/{self.name}"

    def hierarchies(self):
        """Where the node's cgroupRoot goes: the one unified tree (cgroup v2), or every v1
        hierarchy (the kubelet checks each)."""
        if os.path.exists(os.path.join(CGROUP_FS, "cgroup.controllers")):
            # cgroup v2 (not what this project's machines mount: untried here).
            return [CGROUP_FS]
        return [d for d in sorted(glob.glob(os.path.join(CGROUP_FS, "*")))
                if os.path.isdir(d) and os.path.basename(d) != "unified"]

    def make_cgroups(self):
        """The node's cgroupRoot."""
        for h in self.hierarchies():
            d = os.path.join(h, self.name)
            os.makedirs(d, exist_ok=True)
            if os.path.basename(h) == "cpuset":
                for f in ("cpuset.cpus", "cpuset.mems"):
                    with open(os.path.join(h, f)) as src, open(os.path.join(d, f), "w") as dst:
                        dst.write(src.read())

    def cgroup_pids(self):
        pids = set()
        for h in self.hierarchies():
            for procs in glob.glob(os.path.join(h, self.name, "**", "cgroup.procs"), recursive=True):
                try:
                    with open(procs) as f:
                        pids.update(int(x) for x in f.read().split())
                except OSError:
                    pass
        return pids

    def remove_cgroups(self):
        for h in self.hierarchies():
            top = os.path.join(h, self.name)
            # Deepest first: a cgroup goes only once it has no children.
            for d in sorted((d for d, _, _ in os.walk(top)), key=len, reverse=True):
                try:
                    os.rmdir(d)
                except OSError:
                    pass

    # ------------------------------------------------------------------ containerd, kubelet

    def write_containerd_config(self):
        path = self.p("containerd.toml")
        with open(path, "w") as f:
            f.write(f"""version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
# The host's /opt/containerd belongs to nobody here.
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{SANDBOX_IMAGE}"
  # Processes here lack CAP_SYS_RESOURCE: without this, runc fails every sandbox after
  # "failed to update /proc/self/oom_score_adj: Permission denied".
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/opt/cni/bin"
    conf_dir = "/etc/cni/net.d"
""")
        return path

    def write_kubelet_config(self, ca_file):
        path = self.p("kubelet.yaml")
        with open(path, "w") as f:
            f.write(f"""apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
# Machines that mount cgroup v1 (as this project's do) run the lab too; each node has a cgroup
# tree of its own.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: {self.cgroup_root()}
failSwapOn: false
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: true}}
  x509: {{clientCAFile: {ca_file}}}
authorization: {{mode: Webhook}}
healthzBindAddress: 127.0.0.1
healthzPort: 10248
readOnlyPort: 0
resolvConf: /etc/resolv.conf
maxPods: 250
kubeAPIQPS: 50
kubeAPIBurst: 100
serializeImagePulls: false
# The images are imported, never pulled: nothing may collect them, and the lab's disk is not
# the node's business.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {{memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}}
nodeStatusReportFrequency: 10s
""")
        return path

    # ------------------------------------------------------------------ tear-down

    def processes(self):
        """PIDs of every process in this node's mount namespace or cgroups (containerd's shims
        and the containers they started outlive containerd)."""
        pids = self.cgroup_pids()
        try:
            ino = os.stat(self.mnt).st_ino if is_mountpoint(self.mnt) else None
        except OSError:
            ino = None
        if ino is not None:
            for d in glob.glob("/proc/[0-9]*"):
                try:
                    if os.stat(os.path.join(d, "ns", "mnt")).st_ino == ino:
                        pids.add(int(os.path.basename(d)))
                except OSError:
                    pass
        pids.discard(os.getpid())
        return pids

    def kill_all(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while (pids := self.processes()) and time.monotonic() < deadline:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.1)
        return self.processes()

    def remove(self):
        """After the node's recorded processes are stopped: what they left, then the mounts.
        What could not be removed (a process left keeps the namespace, so that a later `down`
        can still find it by the namespace)."""
        left = [f"process {pid}" for pid in sorted(self.kill_all())]
        self.remove_cgroups()
        if not left and not unmount_all(self.mnt):
            left.append(f"mount {self.mnt}")
        return left
