//! Process figures from /proc: resident memory and CPU time of the server under test and of the
//! bench itself, and the bench's open-file limit (every connection is a file descriptor).

use super::Result;

/// One reading of a process's memory and CPU time.
#[derive(Clone, Copy)]
pub struct Sample {
    pub rss_bytes: u64,
    /// User plus system CPU time since the process started.
    pub cpu_seconds: f64,
    /// Of which system (kernel) time.
    pub system_seconds: f64,
}

/// Reads `/proc/PID/status` (VmRSS) and `/proc/PID/stat` (utime, stime).
pub fn sample(pid: u32) -> Result<Sample> {
    let read = |file: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/{file}"))
            .map_err(|err| format!("cannot read /proc/{pid}/{file} (--server-pid {pid}): {err}"))
    };
    let status = read("status")?;
    let rss_kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("/proc/{pid}/status has no VmRSS"))?;
    let stat = read("stat")?;
    // Fields after the parenthesised command name (which may hold spaces): state is field 3,
    // utime and stime are fields 14 and 15.
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let (utime, stime) = ticks(11)
        .zip(ticks(12))
        .ok_or_else(|| format!("/proc/{pid}/stat: unexpected format"))?;
    Ok(Sample {
        rss_bytes: rss_kib * 1024,
        cpu_seconds: (utime + stime) as f64 / clock_ticks(),
        system_seconds: stime as f64 / clock_ticks(),
    })
}

/// The machine's CPU time serving softirqs so far (`/proc/stat`), whatever task they ran in.
/// On loopback that is mostly taking segments in: a sender's `send` runs the receiving
/// socket's TCP work (net_rx_action, tcp_v4_rcv) before it returns.
fn softirq_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let softirq = stat
        .lines()
        .next()
        .and_then(|cpu| cpu.split_whitespace().nth(7))
        .and_then(|ticks| ticks.parse::<u64>().ok())
        .unwrap_or(0);
    softirq as f64 / clock_ticks()
}

/// The bench's own figures.
pub fn own() -> Sample {
    sample(std::process::id()).expect("/proc/self is readable")
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// CPU seconds spent by the server (when its pid is known) and by the bench over a window.
pub struct CpuWindow {
    server_pid: Option<u32>,
    server_start: Option<Sample>,
    own_start: Sample,
    softirq_start: f64,
}

/// CPU seconds a window cost.
pub struct CpuSpent {
    pub server: Option<f64>,
    /// Of `server`, kernel time (the receiving side's loopback work included, see
    /// [`CpuSpent::softirq`]).
    pub server_kernel: Option<f64>,
    pub bench: f64,
    /// The machine's softirq time: on an otherwise quiet network, the loopback receive work of
    /// the server's sends and of the clients' (billed to whichever task sent).
    pub softirq: f64,
}

impl CpuWindow {
    pub fn start(server_pid: Option<u32>) -> Result<Self> {
        let server_start = server_pid.map(sample).transpose()?;
        Ok(Self {
            server_pid,
            server_start,
            own_start: own(),
            softirq_start: softirq_seconds(),
        })
    }

    pub fn stop(&self) -> Result<CpuSpent> {
        let server = match (self.server_pid, self.server_start) {
            (Some(pid), Some(start)) => Some((sample(pid)?, start)),
            _ => None,
        };
        Ok(CpuSpent {
            server: server.map(|(end, start)| end.cpu_seconds - start.cpu_seconds),
            server_kernel: server.map(|(end, start)| end.system_seconds - start.system_seconds),
            bench: own().cpu_seconds - self.own_start.cpu_seconds,
            softirq: softirq_seconds() - self.softirq_start,
        })
    }
}

/// Raises the soft open-file limit to the hard limit: each connection needs a descriptor.
pub fn raise_fd_limit() -> Result<()> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit for getrlimit/setrlimit to read and write.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(format!("getrlimit: {}", std::io::Error::last_os_error()));
        }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(format!("setrlimit: {}", std::io::Error::last_os_error()));
            }
        }
    }
    Ok(())
}
