//! `runner sweep --slurm` against a real Slurm: a one-node cluster on localhost (munged,
//! slurmctld, slurmd with a generated slurm.conf in a temporary directory). Submits a sweep of
//! small runs, cancels one array task midway, resubmits, and checks that only the missing trial
//! ran again and that it continued from its checkpoint to the same result as an uninterrupted
//! run. Installs Debian's Slurm and munge when missing; skips, saying why, only where they
//! cannot be installed or started (not root).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_runner");

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Installs Slurm and munge with apt-get when they are missing. Err says why it could not.
fn ensure_slurm() -> Result<(), String> {
    let wanted = ["slurmctld", "slurmd", "sbatch", "squeue", "munged"];
    if wanted.iter().all(|p| have(p)) {
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("Slurm is not installed and installing it needs root".into());
    }
    if !have("apt-get") {
        return Err("Slurm is not installed and there is no apt-get".into());
    }
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(["slurmctld", "slurmd", "slurm-client", "munge"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    eprintln!("installing slurmctld slurmd slurm-client munge with apt-get");
    if !install() {
        let _ = Command::new("apt-get").args(["update", "-q"]).output();
        if !install() {
            return Err("apt-get install slurmctld slurmd slurm-client munge failed".into());
        }
    }
    match wanted.iter().find(|p| !have(p)) {
        Some(p) => Err(format!("{p} is still missing after installing")),
        None => Ok(()),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A one-node Slurm cluster in a temporary directory; stopped on drop.
struct Cluster {
    dir: tempfile::TempDir,
    daemons: Vec<Child>,
}

impl Cluster {
    fn conf(&self) -> PathBuf {
        self.dir.path().join("slurm.conf")
    }

    fn start() -> Result<Cluster, String> {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["state", "spool", "log"] {
            std::fs::create_dir(d.join(sub)).unwrap();
        }
        let key: Vec<u8> = (0..128u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
            .collect();
        std::fs::write(d.join("munge.key"), key).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d.join("munge.key"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        let munge = Command::new("munged")
            .arg("--force")
            .arg(format!("--key-file={}", d.join("munge.key").display()))
            .arg(format!("--socket={}", d.join("munge.sock").display()))
            .arg(format!("--pid-file={}", d.join("munged.pid").display()))
            .arg(format!("--log-file={}", d.join("log/munged.log").display()))
            .arg(format!("--seed-file={}", d.join("munged.seed").display()))
            .output()
            .map_err(|e| format!("munged: {e}"))?;
        if !munge.status.success() {
            return Err(format!(
                "munged failed: {}",
                String::from_utf8_lossy(&munge.stderr)
            ));
        }
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let conf = format!(
            "ClusterName=runnertest\nSlurmctldHost=localhost(127.0.0.1)\n\
             SlurmctldPort={}\nSlurmdPort={}\nSlurmUser=root\nSlurmdUser=root\n\
             AuthType=auth/munge\nAuthInfo=socket={d}/munge.sock\nCredType=cred/munge\n\
             StateSaveLocation={d}/state\nSlurmdSpoolDir={d}/spool\n\
             SlurmctldPidFile={d}/slurmctld.pid\nSlurmdPidFile={d}/slurmd.pid\n\
             SlurmctldLogFile={d}/log/slurmctld.log\nSlurmdLogFile={d}/log/slurmd.log\n\
             ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nSwitchType=switch/none\n\
             MpiDefault=none\nSchedulerType=sched/builtin\nSelectType=select/cons_tres\n\
             SelectTypeParameters=CR_CPU\nJobAcctGatherType=jobacct_gather/none\n\
             AccountingStorageType=accounting_storage/none\nJobCompType=jobcomp/none\n\
             ReturnToService=2\nKillWait=5\n\
             NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=1000 State=UNKNOWN\n\
             PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP\n",
            free_port(),
            free_port(),
            d = d.display()
        );
        std::fs::write(d.join("slurm.conf"), conf).unwrap();
        let mut cluster = Cluster {
            dir,
            daemons: Vec::new(),
        };
        let log = |name: &str| std::fs::File::create(cluster.dir.path().join(name)).unwrap();
        let ctld = Command::new("slurmctld")
            .arg("-D")
            .arg("-f")
            .arg(cluster.conf())
            .stdout(log("log/slurmctld.out"))
            .stderr(log("log/slurmctld.err"))
            .spawn()
            .map_err(|e| format!("slurmctld: {e}"))?;
        cluster.daemons.push(ctld);
        let slurmd = Command::new("slurmd")
            .args(["-D", "-N", "localhost", "-f"])
            .arg(cluster.conf())
            .stdout(log("log/slurmd.out"))
            .stderr(log("log/slurmd.err"))
            .spawn()
            .map_err(|e| format!("slurmd: {e}"))?;
        cluster.daemons.push(slurmd);
        let t0 = Instant::now();
        loop {
            let out = cluster.command("sinfo").args(["-h", "-o", "%t"]).output();
            if out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "idle") {
                return Ok(cluster);
            }
            if t0.elapsed() > Duration::from_secs(60) {
                return Err(format!(
                    "the node did not come up in 60 s; logs in {}",
                    cluster.dir.path().join("log").display()
                ));
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// A command that talks to this cluster.
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", self.conf());
        c
    }

    /// Waits until Slurm has no job left (queued or running).
    fn wait_idle(&self, limit: Duration) {
        let t0 = Instant::now();
        loop {
            let out = self.command("squeue").arg("-h").output().unwrap();
            if out.status.success() && out.stdout.is_empty() {
                return;
            }
            assert!(t0.elapsed() < limit, "jobs still in squeue after {limit:?}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.command("scancel").arg("--user=root").output();
        for d in &mut self.daemons {
            let _ = d.kill();
            let _ = d.wait();
        }
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("munged.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

fn runner(cluster: &Cluster, dir: &Path, args: &[&str]) -> Output {
    let out = cluster
        .command(BIN)
        .args(args)
        .current_dir(dir)
        .env("RUNNER_RUNS_DIR", dir.join("runs"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "runner {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// One local cluster at a time: two would share the same two cores.
static ONE_CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A started cluster and a directory holding `exp.toml`, a small MLP of `steps` steps named
/// `name` (evaluated three times, checkpointed every 100 steps); `None`, having said why, where
/// Slurm cannot be installed or started.
fn cluster_and_experiment(name: &str, steps: u32) -> Option<(Cluster, tempfile::TempDir)> {
    if let Err(why) = ensure_slurm() {
        eprintln!("SKIPPED: {why}");
        return None;
    }
    let cluster = match Cluster::start() {
        Ok(c) => c,
        Err(why) => {
            eprintln!("SKIPPED: cannot start a local Slurm cluster: {why}");
            return None;
        }
    };
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("exp.toml"),
        format!(
            "name = \"{name}\"\nseed = 0\n[model]\nkind = \"mlp\"\nhidden = [32]\n\
             [optimizer]\nkind = \"sgd\"\nlr = 0.05\n[train]\nbatch_size = 32\nsteps = {steps}\n\
             eval_every = {}\ncheckpoint_every = 100\n",
            steps / 3
        ),
    )
    .unwrap();
    Some((cluster, work))
}

#[test]
fn a_sweep_on_slurm_resubmits_only_the_missing_trial() {
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let t_start = Instant::now();
    let Some((cluster, work)) = cluster_and_experiment("slurm", 6000) else {
        return;
    };
    let dir = work.path();
    std::fs::write(
        dir.join("sweep.toml"),
        "name = \"sl\"\nbase = \"exp.toml\"\nseeds = [0, 1, 2]\n",
    )
    .unwrap();

    // Submit: one trial per array task, one task at a time, so task 1 runs alone.
    let out = runner(
        &cluster,
        dir,
        &[
            "sweep",
            "sweep.toml",
            "--slurm",
            "--max-parallel",
            "1",
            "--json",
        ],
    );
    let sub = &json_lines(&out)[0];
    assert_eq!(sub["array"], "0-2%1", "{sub}");
    let job = sub["job_id"].as_str().unwrap().to_string();
    let dry = runner(&cluster, dir, &["sweep", "sweep.toml", "--dry-run"]);
    let run_dirs: Vec<PathBuf> = String::from_utf8_lossy(&dry.stdout)
        .lines()
        .take(3)
        .map(|l| dir.join("runs").join(l.split_whitespace().nth(2).unwrap()))
        .collect();

    // Cancel task 1 once its run has written a checkpoint.
    let t0 = Instant::now();
    while !run_dirs[1].join("checkpoint.safetensors").exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "task 1 never checkpointed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = runner(&cluster, dir, &["sweep", "status", "sweep.toml"]);
    let text = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(
        text.contains(&format!("slurm {job}_1 running")),
        "status shows Slurm's view:\n{text}"
    );
    let cancelled = cluster
        .command("scancel")
        .arg(format!("{job}_1"))
        .status()
        .unwrap();
    assert!(cancelled.success());
    cluster.wait_idle(Duration::from_secs(180));

    let summary = |d: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(d.join("summary.json")).unwrap()).unwrap()
    };
    assert_eq!(summary(&run_dirs[0])["status"], "complete");
    assert_eq!(summary(&run_dirs[2])["status"], "complete");
    assert_eq!(summary(&run_dirs[1])["status"], "interrupted");
    let cut_at = summary(&run_dirs[1])["steps_done"].as_u64().unwrap();
    assert!(cut_at > 0 && cut_at < 6000, "cancelled at step {cut_at}");
    let before: Vec<String> = [&run_dirs[0], &run_dirs[2]]
        .iter()
        .map(|d| std::fs::read_to_string(d.join("summary.json")).unwrap())
        .collect();

    // Resubmit: only trial 1 goes, and it continues from its checkpoint.
    let out = runner(&cluster, dir, &["sweep", "sweep.toml", "--slurm", "--json"]);
    let sub = &json_lines(&out)[0];
    assert_eq!(sub["array"], "1", "{sub}");
    assert_eq!(sub["trials"], 1, "{sub}");
    let job2 = sub["job_id"].as_str().unwrap().to_string();
    cluster.wait_idle(Duration::from_secs(180));
    assert_eq!(summary(&run_dirs[1])["status"], "complete");
    let after: Vec<String> = [&run_dirs[0], &run_dirs[2]]
        .iter()
        .map(|d| std::fs::read_to_string(d.join("summary.json")).unwrap())
        .collect();
    assert_eq!(before, after, "trials 0 and 2 must not run again");
    let sweep_dir = common::sweep_dir(&dir.join("runs"), "");
    let log = std::fs::read_to_string(sweep_dir.join(format!("slurm/task-{job2}_1.log"))).unwrap();
    assert!(
        log.contains("resuming") && log.contains(&format!("after step {cut_at}")),
        "{log}"
    );
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dirs[1].join("meta.json")).unwrap())
            .unwrap();
    assert_eq!(meta["resumed"].as_array().map(Vec::len), Some(1), "{meta}");

    // The resumed trial equals an uninterrupted run, bit for bit.
    let verify = runner(
        &cluster,
        dir,
        &["verify", run_dirs[1].to_str().unwrap(), "-q"],
    );
    assert!(String::from_utf8_lossy(&verify.stdout).contains("result: bit-identical"));

    // Nothing is left to submit.
    let out = runner(&cluster, dir, &["sweep", "sweep.toml", "--slurm", "--json"]);
    assert_eq!(json_lines(&out)[0]["tasks"], 0);
    eprintln!(
        "Slurm test: 3 trials, task 1 cancelled at step {cut_at}, resubmitted alone and \
         resumed; {:.1} s in all",
        t_start.elapsed().as_secs_f64()
    );
}

#[test]
fn tpe_workers_on_slurm_meet_the_budget_when_one_is_cancelled() {
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let t_start = Instant::now();
    let Some((cluster, work)) = cluster_and_experiment("tw", 3000) else {
        return;
    };
    let dir = work.path();
    std::fs::write(
        dir.join("sweep.toml"),
        "name = \"tw\"\nbase = \"exp.toml\"\nmetric = \"test_accuracy\"\n[tpe]\ntrials = 6\n\
         startup = 2\nseed = 0\n\"optimizer.lr\" = { log_uniform = [0.01, 0.2] }\n",
    )
    .unwrap();

    // Two pulling workers, one core each.
    let out = runner(
        &cluster,
        dir,
        &[
            "sweep",
            "sweep.toml",
            "--slurm",
            "--workers",
            "2",
            "--cpus-per-task",
            "1",
            "--json",
        ],
    );
    let sub = &json_lines(&out)[0];
    assert_eq!(sub["array"], "0-1", "{sub}");
    let job = sub["job_id"].as_str().unwrap().to_string();
    let sweep_dir = common::sweep_dir(&dir.join("runs"), "");

    // Cancel worker 1 once the trial it runs has written a checkpoint.
    let log1 = sweep_dir.join(format!("slurm/task-{job}_1.log"));
    let t0 = Instant::now();
    let (trial, run_dir) = loop {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "worker 1 never checkpointed a trial"
        );
        std::thread::sleep(Duration::from_millis(100));
        let log = std::fs::read_to_string(&log1).unwrap_or_default();
        // "[sweep] started trial N (<run dir>): --set ..."
        let Some(line) = log
            .lines()
            .rfind(|l| l.starts_with("[sweep] started trial"))
        else {
            continue;
        };
        let trial: u64 = line.split_whitespace().nth(3).unwrap().parse().unwrap();
        let path = line.split_once('(').unwrap().1.split_once(')').unwrap().0;
        let run_dir = PathBuf::from(path);
        if run_dir.join("checkpoint.safetensors").exists() {
            break (trial, run_dir);
        }
    };
    let status = runner(&cluster, dir, &["sweep", "status", "sweep.toml"]);
    let text = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(
        text.contains(&format!("{job}_0 running")) && text.contains(&format!("{job}_1 running")),
        "status shows the workers:\n{text}"
    );
    assert!(cluster
        .command("scancel")
        .arg(format!("{job}_1"))
        .status()
        .unwrap()
        .success());

    // Worker 0 takes the cancelled worker's trial over and finishes the budget alone.
    cluster.wait_idle(Duration::from_secs(300));
    let events = common::journal(&sweep_dir);
    let of = |kind: &str| -> Vec<u64> {
        events
            .iter()
            .filter(|e| e["event"] == kind)
            .map(|e| e["trial"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(of("proposed"), vec![0, 1, 2, 3, 4, 5], "{events:?}");
    let mut finished = of("finished");
    finished.sort_unstable();
    assert_eq!(finished, vec![0, 1, 2, 3, 4, 5], "each trial finished once");
    assert!(of("failed").is_empty(), "{events:?}");
    let started = of("started").iter().filter(|&&t| t == trial).count();
    assert_eq!(started, 2, "trial {trial} was taken twice: {events:?}");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["resumed"].as_array().map(Vec::len), Some(1), "{meta}");
    let status = runner(&cluster, dir, &["sweep", "status", "sweep.toml"]);
    let text = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(text.starts_with("6 of 6 trials: 6 complete"), "{text}");

    // The resumed trial equals an uninterrupted run, bit for bit.
    let verify = runner(&cluster, dir, &["verify", run_dir.to_str().unwrap(), "-q"]);
    assert!(String::from_utf8_lossy(&verify.stdout).contains("result: bit-identical"));

    // Nothing is left to submit.
    let out = runner(
        &cluster,
        dir,
        &["sweep", "sweep.toml", "--slurm", "--workers", "2", "--json"],
    );
    assert_eq!(json_lines(&out)[0]["tasks"], 0);
    eprintln!(
        "Slurm TPE test: 6 trials, 2 workers, worker 1 cancelled during trial {trial}, which \
         worker 0 resumed; {:.1} s in all",
        t_start.elapsed().as_secs_f64()
    );
}

/// A grid sweep runs on the same pulling workers as a `[tpe]` one: `--slurm --workers 2` for
/// five trials, each run once, recorded in the journal; submitting again sends nothing.
#[test]
fn a_grid_sweep_runs_on_pulling_workers_on_slurm() {
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let t_start = Instant::now();
    let Some((cluster, work)) = cluster_and_experiment("gw", 900) else {
        return;
    };
    let dir = work.path();
    std::fs::write(
        dir.join("sweep.toml"),
        "name = \"gw\"\nbase = \"exp.toml\"\n[grid]\n\
         \"optimizer.lr\" = [0.01, 0.02, 0.05, 0.1, 0.2]\n",
    )
    .unwrap();
    let out = runner(
        &cluster,
        dir,
        &[
            "sweep",
            "sweep.toml",
            "--slurm",
            "--workers",
            "2",
            "--cpus-per-task",
            "1",
            "--json",
        ],
    );
    let sub = &json_lines(&out)[0];
    assert_eq!(sub["array"], "0-1", "{sub}");
    cluster.wait_idle(Duration::from_secs(300));
    let events = common::journal(&common::sweep_dir(&dir.join("runs"), ""));
    let all = vec![0, 1, 2, 3, 4];
    assert_eq!(common::trials_with(&events, "finished"), all, "{events:?}");
    assert_eq!(
        common::trials_with(&events, "started"),
        all,
        "each trial run once"
    );
    // Both workers took trials.
    let workers: std::collections::BTreeSet<u64> = events
        .iter()
        .filter(|e| e["event"] == "started")
        .map(|e| e["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(workers.len(), 2, "{events:?}");
    let status = runner(&cluster, dir, &["sweep", "status", "sweep.toml"]);
    let text = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(text.starts_with("5 trials: 5 complete"), "{text}");
    let out = runner(
        &cluster,
        dir,
        &["sweep", "sweep.toml", "--slurm", "--workers", "2", "--json"],
    );
    assert_eq!(json_lines(&out)[0]["tasks"], 0);
    eprintln!(
        "Slurm grid test: 5 trials on 2 pulling workers; {:.1} s in all",
        t_start.elapsed().as_secs_f64()
    );
}
