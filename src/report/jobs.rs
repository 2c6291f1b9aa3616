//! A job's typed outcome as the contract's report document: the findings, sorted and counted,
//! and the job's summary sections under their keys.

use super::{Layout, Report, VerificationSection};
use crate::privilege::audit::{AuditReport, InventoryReport};
use crate::scan::job::ScanReport;
use crate::store::findings::Listing;

impl From<ScanReport> for Report {
    fn from(r: ScanReport) -> Report {
        let mut report = Report::new("scan", r.findings);
        report.rules = r.rules;
        let s = &mut report.summary;
        s.scan = Some(r.stats);
        s.problems = r.problems;
        s.notes = r.notes;
        s.baseline = r.baseline;
        s.verification = r.verification.map(VerificationSection::Scan);
        s.store = r.store;
        s.resolved = (!r.resolved.is_empty()).then_some(r.resolved);
        report
    }
}

impl From<AuditReport> for Report {
    fn from(r: AuditReport) -> Report {
        let mut report = Report::new("audit", r.findings);
        let s = &mut report.summary;
        s.audit = Some(r.audit);
        s.keys = Some(r.keys);
        s.resolved = (!r.resolved.is_empty()).then_some(r.resolved);
        s.not_rechecked = (!r.not_rechecked.is_empty()).then_some(r.not_rechecked);
        s.problems = r.problems;
        s.notes = r.notes;
        report
    }
}

impl From<Listing> for Report {
    fn from(l: Listing) -> Report {
        let mut report = Report::new("findings", l.findings);
        report.summary.acknowledgements = Some(l.acknowledgements);
        report
    }
}

impl From<InventoryReport> for Report {
    fn from(r: InventoryReport) -> Report {
        let mut report = Report::new(r.command, r.findings);
        let s = &mut report.summary;
        s.keys = Some(r.keys);
        s.verification = r.verification.map(VerificationSection::Inventory);
        s.discovery = r.discovery;
        s.problems = r.problems;
        s.notes = r.notes;
        report.layout = Layout::KeyTable {
            evidence: r.evidence,
            notes: r.table_notes,
        };
        report
    }
}
