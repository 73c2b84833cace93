//! The steps of the decision process ([`super::decision`]), by name: what a selection reports
//! as the reason one path beat another, and what a path view carries.

/// A step of the decision process, in the order they apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    LocalPref,
    LocallyOriginated,
    AsPathLen,
    Origin,
    Med,
    EbgpOverIbgp,
    Oldest,
    RouterId,
    ClusterListLen,
    PeerAddress,
    PathId,
}

impl Step {
    pub const ALL: [Step; 11] = [
        Step::LocalPref,
        Step::LocallyOriginated,
        Step::AsPathLen,
        Step::Origin,
        Step::Med,
        Step::EbgpOverIbgp,
        Step::Oldest,
        Step::RouterId,
        Step::ClusterListLen,
        Step::PeerAddress,
        Step::PathId,
    ];

    /// Paths that tie up to and including this step may share the multipath set.
    pub const LAST_MULTIPATH_STEP: Step = Step::EbgpOverIbgp;

    pub fn name(self) -> &'static str {
        match self {
            Step::LocalPref => "local-pref",
            Step::LocallyOriginated => "locally-originated",
            Step::AsPathLen => "as-path-length",
            Step::Origin => "origin",
            Step::Med => "med",
            Step::EbgpOverIbgp => "ebgp-over-ibgp",
            Step::Oldest => "oldest-path",
            Step::RouterId => "router-id",
            Step::ClusterListLen => "cluster-list-length",
            Step::PeerAddress => "peer-address",
            Step::PathId => "path-id",
        }
    }
}
