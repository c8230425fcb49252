//! The cases, their targets, the collected runs and the results table.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::contender::{Contender, Peaks};

const MIB: f64 = 1024.0 * 1024.0;
/// The peak RSS target for the mounter's process, in KiB.
const RSS_TARGET_KIB: u64 = 256 * 1024;

/// One benchmark case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Case {
    /// Sequential read of a large object, cold.
    SequentialRead,
    /// Sequential write of a new file.
    SequentialWrite,
    /// `ls -l` of a large directory, on a fresh mount.
    ListLong,
    /// Reading many small files one by one, on a fresh mount.
    SmallFiles,
    /// Time to the first byte of a large object, on a fresh mount.
    FirstByte,
    /// The sequential read again, in 4 KiB `read(2)` calls: no target of
    /// the issue, it shows what reading in small pieces costs.
    SmallReads,
    /// The same, by a process that read 2 MiB of a file in 4 KiB pieces
    /// just before (untimed): what a program reading many files sees.
    SmallReadsAgain,
}

impl Case {
    /// Every case, in the order they run and print.
    pub const ALL: [Self; 7] = [
        Self::SequentialRead,
        Self::SequentialWrite,
        Self::ListLong,
        Self::SmallFiles,
        Self::FirstByte,
        Self::SmallReads,
        Self::SmallReadsAgain,
    ];
}

/// What the mounter must reach, relative to the raw ceiling.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// At least this fraction of the raw throughput.
    Throughput(f64),
    /// At most this multiple of the raw time.
    Time(f64),
    /// No target: a throughput shown for information.
    Informational,
}

impl Target {
    /// Whether `ratio` (see [`Results::ratio`]) meets the target; `None`
    /// when there is none.
    fn met(self, ratio: f64) -> Option<bool> {
        match self {
            Self::Throughput(min) => Some(ratio >= min),
            Self::Time(max) => Some(ratio <= max),
            Self::Informational => None,
        }
    }
}

/// Who a measurement belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Who {
    /// The S3 server without FUSE.
    Raw,
    /// A FUSE contender.
    Mounted(Contender),
}

/// The sizes the cases use.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// The object read sequentially and for the first byte, in bytes.
    pub read: u64,
    /// The file written, in bytes.
    pub write: u64,
    /// Objects in the listed directory.
    pub list: usize,
    /// Small files read one by one.
    pub small: usize,
    /// The size of each small file, in bytes.
    pub small_size: u64,
}

/// Every run of every case, and each contender's peaks.
#[derive(Debug)]
pub struct Results {
    sizes: Sizes,
    contenders: Vec<Contender>,
    runs: BTreeMap<(Case, Who), Vec<Duration>>,
    peaks: BTreeMap<(Case, Contender), Peaks>,
}

impl Results {
    /// No results yet, for these contenders.
    pub fn new(sizes: Sizes, contenders: Vec<Contender>) -> Self {
        Self { sizes, contenders, runs: BTreeMap::new(), peaks: BTreeMap::new() }
    }

    /// Records one run.
    pub fn record(&mut self, case: Case, who: Who, elapsed: Duration) {
        self.runs.entry((case, who)).or_default().push(elapsed);
    }

    /// Records the peaks of one mount of `contender` running `case`.
    pub fn record_peaks(&mut self, case: Case, contender: Contender, peaks: Peaks) {
        let peak = self.peaks.entry((case, contender)).or_default();
        peak.rss_kib = peak.rss_kib.max(peaks.rss_kib);
        peak.unlinked_kib = peak.unlinked_kib.max(peaks.unlinked_kib);
    }

    /// The peak RSS of `contender` over every mount, or over those of `case`.
    fn peak_rss(&self, contender: Contender, case: Option<Case>) -> Option<u64> {
        self.peaks
            .iter()
            .filter(|((c, who), _)| *who == contender && case.is_none_or(|case| case == *c))
            .map(|(_, peaks)| peaks.rss_kib)
            .max()
    }

    /// A contender's peaks in `case`, as "RSS" or "RSS + unlinked files".
    fn peaks_cell(&self, contender: Contender, case: Case) -> String {
        match self.peaks.get(&(case, contender)) {
            None => "–".to_owned(),
            Some(peaks) if peaks.unlinked_kib == 0 => kib_to_mib(peaks.rss_kib),
            Some(peaks) => {
                let unlinked = if peaks.unlinked_kib < 1024 {
                    format!("{} KiB", peaks.unlinked_kib)
                } else {
                    kib_to_mib(peaks.unlinked_kib)
                };
                format!("{} + {unlinked} in unlinked files", kib_to_mib(peaks.rss_kib))
            }
        }
    }

    /// The cases that have results, in order.
    fn cases(&self) -> Vec<Case> {
        Case::ALL.into_iter().filter(|case| self.runs.keys().any(|(c, _)| c == case)).collect()
    }

    fn median(&self, case: Case, who: Who) -> Option<Duration> {
        let mut runs = self.runs.get(&(case, who))?.clone();
        runs.sort_unstable();
        let mid = runs.len() / 2;
        match runs.len() {
            0 => None,
            n if n % 2 == 1 => Some(runs[mid]),
            _ => Some((runs[mid - 1] + runs[mid]) / 2),
        }
    }

    fn title(&self, case: Case) -> String {
        let Sizes { read, write, list, small, small_size } = self.sizes;
        match case {
            Case::SequentialRead => format!("sequential read, {}", size(read)),
            Case::SequentialWrite => format!("sequential write, {}", size(write)),
            Case::ListLong => format!("`ls -l`, {list} objects"),
            Case::SmallFiles => format!("read {small} files of {}", size(small_size)),
            Case::FirstByte => format!("first byte of a {} object", size(read)),
            Case::SmallReads => format!("sequential read, {}, in 4 KiB reads", size(read)),
            Case::SmallReadsAgain => {
                format!("sequential read, {}, in 4 KiB reads, by a process seen reading so", size(read))
            }
        }
    }

    fn bytes(&self, case: Case) -> Option<u64> {
        match case {
            Case::SequentialRead | Case::SmallReads | Case::SmallReadsAgain => Some(self.sizes.read),
            Case::SequentialWrite => Some(self.sizes.write),
            Case::ListLong | Case::SmallFiles | Case::FirstByte => None,
        }
    }

    const fn target(case: Case) -> Target {
        match case {
            Case::SequentialRead => Target::Throughput(0.8),
            Case::SequentialWrite => Target::Throughput(0.7),
            Case::ListLong | Case::SmallFiles => Target::Time(1.5),
            Case::FirstByte => Target::Time(2.0),
            Case::SmallReads | Case::SmallReadsAgain => Target::Informational,
        }
    }

    fn value(&self, case: Case, elapsed: Duration) -> String {
        match self.bytes(case) {
            Some(bytes) => format!("{:.0} MiB/s", throughput(bytes, elapsed)),
            None if elapsed < Duration::from_secs(1) => format!("{:.1} ms", elapsed.as_secs_f64() * 1e3),
            None => format!("{:.2} s", elapsed.as_secs_f64()),
        }
    }

    /// The ratio shown next to a contender: its share of the raw
    /// throughput, or its multiple of the raw time.
    fn ratio(case: Case, raw: Duration, elapsed: Duration) -> (f64, String) {
        match Self::target(case) {
            Target::Throughput(_) | Target::Informational => {
                let share = raw.as_secs_f64() / elapsed.as_secs_f64();
                (share, format!("{:.0} %", share * 100.0))
            }
            Target::Time(_) => {
                let multiple = elapsed.as_secs_f64() / raw.as_secs_f64();
                (multiple, format!("{multiple:.2}×"))
            }
        }
    }

    /// The results as Markdown: the summary table, then every run.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let names: Vec<_> = self.contenders.iter().map(|c| c.name()).collect();
        let _ = writeln!(out, "| case | raw S3 | {} | mounter target | verdict |", names.join(" | "));
        let _ = writeln!(out, "|---|---|{}---|---|", "---|".repeat(names.len()));
        for case in self.cases() {
            let _ = writeln!(out, "{}", self.row(case));
        }
        let _ = writeln!(out, "{}", self.rss_row());
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "Peak RSS (VmHWM) of the FUSE process, by case, and the most disk space it held at once in \
             files it had unlinked (temporary files):"
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "| case | {} |", names.join(" | "));
        let _ = writeln!(out, "|---|{}", "---|".repeat(names.len()));
        for case in self.cases() {
            let peaks: Vec<_> = self.contenders.iter().map(|c| self.peaks_cell(*c, case)).collect();
            let _ = writeln!(out, "| {} | {} |", self.title(case), peaks.join(" | "));
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "Every run, in seconds (medians above):");
        let _ = writeln!(out);
        let _ = writeln!(out, "| case | who | runs (s) |");
        let _ = writeln!(out, "|---|---|---|");
        for ((case, who), runs) in &self.runs {
            let who = match who {
                Who::Raw => "raw S3",
                Who::Mounted(contender) => contender.name(),
            };
            let runs: Vec<_> = runs.iter().map(|d| format!("{:.3}", d.as_secs_f64())).collect();
            let _ = writeln!(out, "| {} | {who} | {} |", self.title(*case), runs.join(", "));
        }
        out
    }

    fn row(&self, case: Case) -> String {
        let raw = self.median(case, Who::Raw);
        let mut cells = vec![self.title(case), raw.map_or_else(|| "–".to_owned(), |d| self.value(case, d))];
        for contender in &self.contenders {
            cells.push(match (raw, self.median(case, Who::Mounted(*contender))) {
                (Some(raw), Some(d)) => format!("{} ({})", self.value(case, d), Self::ratio(case, raw, d).1),
                (None, Some(d)) => self.value(case, d),
                (_, None) => "failed".to_owned(),
            });
        }
        let target = match Self::target(case) {
            Target::Throughput(min) => format!("≥ {:.0} % of raw, beat s3fs and rclone", min * 100.0),
            Target::Time(max) => format!("≤ {max}× raw, beat s3fs and rclone"),
            Target::Informational => "none (informational)".to_owned(),
        };
        let verdict = match (raw, self.median(case, Who::Mounted(Contender::Mounter))) {
            (Some(raw), Some(mounter)) => {
                let (ratio, shown) = Self::ratio(case, raw, mounter);
                let theirs = |c| self.median(case, Who::Mounted(c)).map(|d| d.as_secs_f64());
                Self::target(case).met(ratio).map_or_else(
                    || "–".to_owned(),
                    |met| {
                        verdict(
                            met,
                            &format!("{shown} of raw"),
                            &self.beaten_by(theirs, mounter.as_secs_f64(), "slower"),
                        )
                    },
                )
            }
            _ => "not measured".to_owned(),
        };
        cells.push(target);
        cells.push(verdict);
        format!("| {} |", cells.join(" | "))
    }

    fn rss_row(&self) -> String {
        let mut cells = vec!["peak RSS of the FUSE process (VmHWM)".to_owned(), "–".to_owned()];
        for contender in &self.contenders {
            cells.push(self.peak_rss(*contender, None).map_or_else(|| "–".to_owned(), kib_to_mib));
        }
        let verdict = match self.peak_rss(Contender::Mounter, None) {
            Some(mounter) => {
                let shown = format!(
                    "{} {} 256 MiB",
                    kib_to_mib(mounter),
                    if mounter > RSS_TARGET_KIB { ">" } else { "≤" }
                );
                let theirs = |c| self.peak_rss(c, None).map(kib_f64);
                verdict(
                    mounter <= RSS_TARGET_KIB,
                    &shown,
                    &self.beaten_by(theirs, kib_f64(mounter), "larger"),
                )
            }
            None => "not measured".to_owned(),
        };
        cells.push("≤ 256 MiB, beat s3fs and rclone".to_owned());
        cells.push(verdict);
        format!("| {} |", cells.join(" | "))
    }

    /// The other contenders whose score (lower is better) the mounter's
    /// does not beat, as "{worse} than NAME".
    fn beaten_by(&self, theirs: impl Fn(Contender) -> Option<f64>, mounter: f64, worse: &str) -> Vec<String> {
        self.contenders
            .iter()
            .filter(|c| **c != Contender::Mounter && theirs(**c).is_some_and(|score| score <= mounter))
            .map(|c| format!("{worse} than {}", c.name()))
            .collect()
    }
}

/// "met", or "missed" with why: the ratio to raw (`shown`) unless `met`,
/// and the contenders that beat the mounter.
fn verdict(met: bool, shown: &str, beaten_by: &[String]) -> String {
    match (met, beaten_by.is_empty()) {
        (true, true) => format!("**met** ({shown})"),
        (true, false) => format!("**missed**: {} ({shown}: met)", beaten_by.join(", ")),
        (false, _) => {
            let mut why = vec![shown.to_owned()];
            why.extend_from_slice(beaten_by);
            format!("**missed**: {}", why.join(", "))
        }
    }
}

fn throughput(bytes: u64, elapsed: Duration) -> f64 {
    let mib = f64::from(u32::try_from(bytes / (1024 * 1024)).unwrap_or(u32::MAX));
    mib / elapsed.as_secs_f64()
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 => format!("{} MiB", b >> 20),
        b => format!("{} KiB", b >> 10),
    }
}

fn kib_f64(kib: u64) -> f64 {
    f64::from(u32::try_from(kib).unwrap_or(u32::MAX))
}

fn kib_to_mib(kib: u64) -> String {
    format!("{:.0} MiB", kib_f64(kib) * 1024.0 / MIB)
}
