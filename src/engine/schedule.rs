//! Replayable schedules: the thread of every step, printed run-length encoded
//! as `"0*3,1,0,1*2"`.

use super::event::ThreadId;
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schedule(pub Vec<ThreadId>);

impl Schedule {
    pub fn steps(&self) -> &[ThreadId] {
        &self.0
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut rest = &self.0[..];
        while let Some(&thread) = rest.first() {
            let run = rest.iter().take_while(|&&t| t == thread).count();
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if run == 1 {
                write!(f, "{thread}")?;
            } else {
                write!(f, "{thread}*{run}")?;
            }
            rest = &rest[run..];
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseScheduleError(pub String);

impl fmt::Display for ParseScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad schedule item {:?}", self.0)
    }
}

impl std::error::Error for ParseScheduleError {}

impl FromStr for Schedule {
    type Err = ParseScheduleError;

    fn from_str(text: &str) -> Result<Schedule, ParseScheduleError> {
        let mut steps = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let bad = || ParseScheduleError(item.to_string());
            let (thread, run) = match item.split_once('*') {
                Some((t, n)) => (t.trim(), n.trim().parse::<usize>().map_err(|_| bad())?),
                None => (item, 1),
            };
            let thread: ThreadId = thread.parse().map_err(|_| bad())?;
            steps.extend(std::iter::repeat_n(thread, run));
        }
        Ok(Schedule(steps))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_run_length_encoding() {
        let s = Schedule(vec![0, 0, 0, 1, 0, 1, 1]);
        assert_eq!(s.to_string(), "0*3,1,0,1*2");
        assert_eq!("0*3,1,0,1*2".parse::<Schedule>().unwrap(), s);
        assert_eq!("".parse::<Schedule>().unwrap(), Schedule::default());
        assert!("0*x".parse::<Schedule>().is_err());
        assert!("a".parse::<Schedule>().is_err());
    }
}
