"""Stage-2 settings as one frozen value object with named defaults; parsed once at the edge."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_GROUPING", "GroupingConfig"]


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupingConfig:
    """How stage 2 groups stage-1 incidents (children) into parents. Durations in seconds of event time.

    gap_s: a child may join a group when its first alert lies within gap_s of the group's reach
        (first_seen - gap_s <= t <= reach + gap_s, reach being the latest alert of any child that extends it).
        Kept at 120 s in issue 17's third protocol: 90 s scored 0.015-0.02 higher on the noise tuning variant
        (seed 101) but put rca-micross and its two-cluster overlay 0.011 under the 60 s baseline.
    burst_s: onset proximity. A joining child extends the group's reach (with its whole span) only when it
        starts within burst_s of the group's latest child onset; a child that starts after a longer lull, or
        merely inside a long child's span, joins but does not carry the group on, so steady background alerts
        sharing a service, or an unrelated fault on a shared host, cannot chain a cause on for ever. Chosen
        (20 s, with merge_window_s 120 s) on rca-micross and its tuning variants, within what the unit tests
        of slow cascades and joins 20 s apart require, and frozen before the held-out seeds were generated.
        A topology path also needs the child to start within burst_s of the group's reach (its latest
        extending alert): the cause must still be alerting (issue 17, sixth round; no new parameter).
    max_hops: topology edges allowed between an entity of the child and one of the group. 1 since issue 17's
        fifth round: a path relates only a child that starts with the group (`shared_labels`), and among
        those, two hops joined another fault 7 times in 17 on the development cascades (seed 6211) and made
        the noise variant (seed 6113) worse with the topology than without; one hop: cascades 0.778 -> 0.789,
        noise 0.883 / 0.841 -> 0.889 / 0.847, rca-micross 0.978 either way.
    max_lifetime_s / max_children: caps; a related child that meets a capped group opens a successor
        that names it in `previous_id`.
    lateness_s: how long a new child is held so that children arriving out of order within it are
        assigned in event-time order (ids and groups then do not depend on arrival order).
    update_interval_s: at most one `updated` event per parent per interval. A parent is republished when
        a child joins or merges in, or a child's severity worsens, not on every change of a child's counts
        (the child's own events carry those).
    retention_s: how long a resolved parent is kept to absorb late events of its children.
    entity_labels: labels whose values name an entity (with the child's service); a value shared by a
        child and a group relates them, and a value the topology knows is a node.
    scope_labels: labels that relate by a shared value, weakest last. Namespace only by default: a shared
        cluster relates every failure that overlaps in a busy cluster (on the generated storms, 2,091
        independent storms over 4 clusters, it cut precision from 0.99 to 0.05); add "cluster" for small ones.
    separate_labels: children and groups whose values of such a label are known and disjoint never meet.
    shared_labels / shared_node_types: a machine's labels and topology node types (lower case). A value of such a
        label, or a topology path through such a node, relates a child to a group only when the child starts
        within burst_s of the group's latest child onset: every tenant of a host shares it, so it is evidence
        that two incidents began together, not that a later one belongs to an earlier cause (`relations`). So
        does any topology path since issue 17's fifth round (`engine`); through a machine it ranks lower.
    company: a child that starts more than burst_s after a group's reach joins it only when another incident
        of its scope started within burst_s before it (or with it); alone, it opens its own group (`engine`).
        Issue 17's sixth round, read on the development noise sets: F1 0.910 / 0.861 -> 0.926 / 0.882 (seed
        6113, noise between faults / everywhere), 0.900 / 0.868 -> 0.917 / 0.894 (seed 101); rca-micross
        0.9706 -> 0.9698 (11 stragglers of its faults, alone at their fault's end, now stand apart). False: the
        rule before.
    caller_window_s: a name a group knows only as a `caller` (the calling side of a trace error: a victim of the
        call) relates a child only when it starts within this of the group's latest child onset; a fault of that
        caller's own, later, is another cause (issue 17, seventh round). 120 s, chosen on development sets only
        by the rule declared in commit 5192f73 before its grid, and frozen (see benchmarks/RESULTS.md, caller17).
    victims: the mirror of caller_window_s: a name the child carries only as a caller (the calling side of its failed
        call: a victim) relates it only within caller_window_s of the group's latest onset (issue 17, session 31,
        chosen on development data by the rule declared in benchmarks/RESULTS.md, casc17c). False: the rule before.
    burst_follow: a child that names exactly one entity (its service: a host's own metric, whose service and instance
        are the host), relates to no open group and would open its own, joins the one group of its scope that took
        a child starting within burst_s before it, when no other group's child started in that window (`engine`).
        Such a child has nothing a cause could share: on the development noise sets a fault's host metrics that
        started with it stayed apart (issue 17, session 31; figures in benchmarks/RESULTS.md, noise17c). False:
        the rule before.
    borrowed_folds: a group related to a child only by a name borrowed through a path (`GroupState.borrowed`) folds
        into the child's best group when their latest onsets lie within burst_s (not merge_window_s): one burst of
        one fault. On the development noise sets the file otherwise kept a fault's pieces apart where a name folds
        them without it (issue 17, session 31, topo17b; figures in benchmarks/RESULTS.md). False: the rule before
        (a borrowed name never folds two causes).
    call_chains: a child whose failed call went into a service (its `callee`'s, by instance naming) that the group
        holds a failed call out of (a `caller` of that service) is related to it, within caller_window_s of its
        latest onset, never folding two groups (`relations`; issue 17, session 31, read on the development
        cascades: a trace error one hop further up the call graph shared no name with its cause and opened apart,
        the largest class of wrongly split pairs there). False (the rule before) by default since session 32: on the
        development noise sets it put a noise trace error into a service the cause's calls came out of in the cause,
        0.002-0.007 of F1 (benchmarks/RESULTS.md, casc18); True lifts the development cascades without a file.
    path_chains: with a topology, a child that names a failed call (a `callee`) and has an edge from one of its own
        names (its service, its callee) to a name of the group, in the edge's direction (the child's service calls the
        group's: the failure climbing the call graph), is related by that path as a caller name is: within
        caller_window_s of the group's latest onset while the group alerts, not only within burst_s of the onset
        (`relations._call_path`, `engine._admits`). Issue 17, session 32, read on the development cascades: such a
        trace error 20-120 s after the cause's latest onset, the root still alerting, shared no name with it and
        opened apart. False: the rule before (any path only within burst_s).
    trace_follow: a child that names a failed call (a `callee`), relates to no open group and would open its own
        joins the one accepting group of its scope that alerts when it starts (its reach within burst_s before the
        start), when no other group of the scope does; the names it brings are borrowed, as a path child's
        (`engine._trace_follow`). Issue 17, session 32, read on the development cascades: a trace error into a
        service that calls the failing one shares no name with the cause and, without a topology file, nothing
        relates it. False: the rule before.
    resume_below: a child that is its group's only child, held fewer than this many alerts, and whose event moves its
        latest alert more than gap_s past its previous one (it resumed after a lull its group would have closed on)
        carries the group on: once the release point passes the child's new latest alert, the group's latest onset
        moves to it and the group accepts again until its reach + gap_s (`engine._resume`). A lone alert or a short
        chain of a busy key is background that stage 1 glued in front of a fault's burst; stage 2 otherwise kept it
        in a group that had stopped accepting, apart from the rest of the fault (issue 17, session 32, noise18;
        figures in benchmarks/RESULTS.md). 0: never (the rule before).
    lone_apart: a bridge folds a group holding one child of one alert that started alone (no other incident of its
        scope within burst_s before it: `onsets`) only when the two groups' latest onsets lie within burst_s, not
        merge_window_s (`engine._lone`). A merge says two groups are one blast seen from different sides; a lone
        background alert that shares a service with a fault is no side of it (issue 17, session 32, noise18: on the
        development noise sets such folds were 3-8k wrongly merged pairs per set). False: the rule before.
    lull_s: a child whose event moves its latest alert more than lull_s past its previous one (no alert of it in
        between: stage 1 publishes a change every update_interval_s) stops extending its group's reach from then,
        unless the group resumes on it (`engine._lulled`, `resume_below`). Stage 1's continuation gap (min_gap 180 s,
        longer for a slow key) glues a busy key's later background alert onto a fault's incident; its span then moved
        the reach past the fault's end, and the next fault, or a noise alert, starting within gap_s of that reach
        joined the finished fault's group (issue 17, session 33, noise19: read on the development noise sets where the
        60 s time-gap baseline is right and stage 2 wrong). 0: never (the rule before).
    machine_follow: a child that names nothing but machines (values of `shared_labels`, or topology nodes of
        `shared_node_types`) beside its own service, and no call (a host's own metric), and that relates to a group only
        by a shared machine, is admitted while the group alerts (it starts within burst_s of the group's reach), not
        only within burst_s of its latest onset, when no other group it relates to shares a machine with it; a group
        taken so is joined, never folded with another, the child moves none of its onsets and the names it brings
        relate as caller names, as a call-chain child's (`engine._machine`). Issue 17, session 33 (casc19), read on
        the development cascades: a host's load metric drawn anywhere in its fault's span was the largest class of
        wrongly split pairs with the topology file (3.9-7.4k per seed) and the first or second without it. False: the
        rule before (a shared machine only within burst_s of the latest onset). On, with `machine_follow_filed`, since
        issue 17's session 35 (casc21: judged again on the eleventh round's sets with stage 1's dense-storm gap on, it
        met the round's rule: cascade family mean +0.0030 with the file, nothing else moved).
    tenants_apart: with a topology, a group related to a child that names an entity the topology knows that is not a
        machine (a tenant: a service, an instance) only by a shared machine (a `shared_labels` value, or a path through
        a node of `shared_node_types`) is never the child's target: no join, no successor, no note that it started
        alone; it still folds into the child's best group when that one is related otherwise (`engine._tenants_apart`).
        The file knows both tenants and no path between them that avoids the machine, while a fault's two sides, one
        of them seen by its host, are one blast. A group that holds a machine's own alert (a child whose service the
        topology knows as a machine, as MicroSS names a host's metrics) takes such a child as before: the machine
        itself fails. Without a topology nothing changes. Issue 17, session 33 (casc19),
        read on the development cascades with the file: such joins were new faults' root symptoms (0 right, 5-7
        wrong per seed, 4.3-8.9k wrongly merged pairs); refusing the folds too cost every noise set. False: the rule
        before. True by default since session 34 (casc20): it met the tenth round's decision rule (cascade family mean,
        without and with the file, +0.0079; noise +0.00002, no set down more than 0.0007; benchmarks/RESULTS.md).
    burst_rivals: burst-follow (`burst_follow`) when more than one group took a child within burst_s before the
        one-name child: it joins the one with the most children (then the oldest), not none (`engine._rivals`). A
        fault's burst opens small groups of its own pieces (a container's metric, a trace error that names nothing
        the first child named) beside its main group within seconds, and a host's metric then met two or three
        groups and stood apart; the 60 s time-gap baseline keeps them together (issue 17, session 34, noise20: read
        on the development noise sets with `benchmarks/split_mechanisms.py`). False: the rule before.
    placeholder_values: values that name no entity (MicroSS puts host="system" on host-level metrics).
    max_entities: entity names a group keeps for matching; later ones are not added.
    merge_window_s: a child related to several open groups merges those whose latest child onsets lie within
        this (120 s, chosen with burst_s) of the best-related one's into the oldest of them (0: never merge; the
        child joins the best). Measured from the latest child onset since issue 17's fourth round (the first
        child may be a background alert glued in front of a fault's burst; see `engine`).
    """

    gap_s: float = 120.0
    max_hops: int = 1
    max_lifetime_s: float = 3600.0
    max_children: int = 200
    lateness_s: float = 5.0
    update_interval_s: float = 5.0
    retention_s: float = 3600.0
    entity_labels: tuple[str, ...] = ("host", "node", "instance", "pod", "caller", "callee")
    scope_labels: tuple[str, ...] = ("namespace",)
    separate_labels: tuple[str, ...] = ("cluster",)
    shared_labels: tuple[str, ...] = ("host", "node")
    shared_node_types: frozenset[str] = frozenset({"host", "node", "machine", "vm"})
    placeholder_values: frozenset[str] = frozenset({"", "-", "system", "unknown", "none", "null", "n/a",
                                                    "localhost"})
    max_entities: int = 500
    merge_window_s: float = 120.0
    burst_s: float = 20.0
    caller_window_s: float = 120.0
    company: bool = True
    victims: bool = True
    burst_follow: bool = True
    borrowed_folds: bool = True
    call_chains: bool = False
    path_chains: bool = True
    trace_follow: bool = False
    resume_below: int = 5
    lone_apart: bool = True
    lull_s: float = 0.0
    machine_follow: bool = True
    tenants_apart: bool = True
    prompt_pairs: bool = False
    """A group that takes its second child (by a join, or a merge) publishes an `updated` event at once instead of
    within update_interval_s: with causes of one incident not published (`publishing`) that event is the cause's
    first, and its page waits for it. Off (the default, and `aiops replay`): the same parents, one event fewer
    per group; the stream turns it on with `stage2_lone_causes` off (issue 17, session 32)."""
    burst_rivals: bool = False
    related_company: bool = False
    """Company (`company`) counts only a companion placed in a group the child relates to (or not placed yet): a child
    that starts more than burst_s after a group's reach joins it when the burst it came with is that cause's (or a
    related one's), not when an unrelated background alert happened to start just before it (`engine._alone`). On
    the development noise sets a single noise alert sharing a service with a finished fault joined it more than
    20 s after its reach, in the company of another noise alert (1.2-1.75k wrongly merged pairs on 6229; issue 17,
    session 34, noise20). False: the rule before (any incident of the scope is company)."""
    chains_last: bool = False
    """With `call_chains`, a call chain relates a child to a group only when no shared name does, a name the group
    knows only as a caller included (`engine._link`). Without it, a child carrying that name only as a caller (a
    victim) took the chain instead, and a chain never folds two groups: read on noise between 101 (tuning), a fault's
    trace error that shares its caller with one of the fault's groups and a name with another folded the two with
    call chains off and not with them on (issue 17, session 34, casc20). False: the rule before."""
    machine_follow_filed: bool = False
    """`machine_follow` only with a topology file (`engine._machine`): there `tenants_apart` keeps a new fault's
    tenant symptom off the cause alerting on its host, which was half of what machine-follow cost cascades 201
    (issue 17, session 33); without a file nothing does. False: machine-follow with or without a file. True by
    default from session 35 (casc21), with `machine_follow`: without a file nothing changes. False by default since
    session 37 (casc23): with `tenants_apart_labels` a tenant's symptom no longer joins a cause by its host without
    a file either, and the pair met the thirteenth round's rule (benchmarks/RESULTS.md)."""
    upstream_lingers: bool = False
    """A path of calls (`path_chains`) relates within caller_window_s of the group's latest onset (and its time gap)
    without the group still alerting (its reach within burst_s: `engine._alerting`). Read on the development cascades
    with the file (casc20): the hop-2 trace errors opened apart were most often refused only by that check (201: 13,
    6323: 19, 8101: 37 children), their cause's root alerting every 5-40 s, so its reach lags its fault. False: the
    rule before."""
    company_named: bool = False
    """With `related_company`, a group the child relates to by a topology path alone does not make its companion
    company (`engine._company_groups`). With the file a companion's fresh group is a path away from most children (one
    hop on MicroSS's graph, admitted because the child starts within burst_s of its onset while it alerts), so an
    unrelated background alert counted again and the rule gained less with the file than without (issue 17, session
    35, noise21: with `related_company` the noise mean rose 0.0065 with the file as without it; it failed the eleventh
    round's decision rule on cascades 6211, benchmarks/RESULTS.md). False: every related group counts."""
    company_reach: bool = False
    """With `related_company`, a companion that started within burst_s of the reach of a group the child relates to
    is company wherever it was placed (`engine._alone`): the cause was still alerting when it came, so the burst goes
    on. On the development cascades a fault's later trace error named the root while its companion, another piece of
    the same fault that shares no name with it, had opened its own group (issue 17, session 35, noise21: it halved
    the fall on 6211 without the file, not with it, and cost 6343; failed the decision rule). False: only placement
    counts."""
    recur_apart_s: float = 60.0
    """A child that is another stage-1 incident of a key its group already holds (stage 1 ended the first, the same
    symptom came again), where every earlier incident of that key stopped before the group's reach (its latest
    extending alert: the outage outlived the symptom) and the child starts more than this long after that reach, is
    the next outage, not this one going on: it does not relate to the group, and a group holding such a recurrence is
    never folded with it (`engine._recurs`, `engine._in_turn`). A key whose incident is what the group last alerted
    with is a storm pausing (stage 1's dense-storm gap splits those) and joins as before. On the development noise sets
    ("noise everywhere" 6143, 6257, 6287) most wrongly merged fault+fault pairs came from one glue each: a finished
    fault's group, still accepting within gap_s of its reach, took the next fault's `redisservice/trace:PD` incident
    (the key the finished fault opened with) 106-117 s after that reach, directly or by a fold through a noise alert,
    where the 60 s time-gap baseline sees a gap (issue 17, session 36, noise22). 60 s (the baseline's minute of
    silence) by default since session 36: it met the twelfth round's decision rule (noise family mean +0.0061 without
    the file, +0.0062 with it; cascades and storms no lower; no set down more than 0.0006; benchmarks/RESULTS.md).
    0: never (the rule before)."""
    climb_s: float = 60.0
    """Calls climbing: a child that names a failed call (a `callee`), relates to no open group and would open its own
    joins the one accepting group of its scope, with room, that holds a failed call out of the callee's service (a
    name it knows only as a caller, of that service by instance naming: `relations.service_of`), when the child starts
    within climb_s of that group's reach; with two such groups, none (`engine._climb`). The failure climbing the call
    graph while its cause still fails: R fails, H's calls into R fail, then U's calls into H. The child joins as a
    call-chain child does (its names relate as caller names, it moves no onset and no reach, it folds nothing). Read
    on the development cascades (issue 17, session 36, casc22): such hop-2 trace errors, sharing no name with the
    cause, were the largest class of wrongly split pairs without the file (13-30k a seed), and with it most were
    refused as paths past caller_window_s or while the root paused. Unlike `call_chains` it never outranks a name
    the child shares with another group (a new fault at H names H), and unlike `trace_follow` it needs the name.
    0: never (the rule before). At 20, 60 and 120 s, alone or with the fields below, it failed the twelfth round's
    decision rule (the noise family's mean -0.00003 to -0.0007, or cascades 201); 60 s by default since session 37
    (casc23): it met the thirteenth round's rule (a non-target family's mean may fall by 0.0005): cascade family mean
    +0.0099, noise -0.0001, no set down more than 0.0013 (benchmarks/RESULTS.md)."""
    climb_lone_apart: bool = False
    """With `climb_s`, a group that is one alert which started alone (`engine._lone`, as for `lone_apart`) takes no
    climbing child. Read on the development noise sets (casc22): most of climbing's wrong joins there were one
    background trace error climbing into another, alone; the pair is then no longer lone, and a bridge folds it into
    a fault. False: the rule before (any group)."""
    climb_owns: bool = False
    """With `climb_s`, a climbing child joins as a child sharing a name does: the names it brings are the group's own and
    it moves the group's latest onset (and its reach, when it starts within burst_s of that onset). Read on the
    development noise sets (casc22): a fault's first trace error climbed into an older group of the same fault, and
    since it moved no onset, the bridge that later came within caller_window_s of it was refused (the group's onset
    was minutes older) and the fault's other piece stayed apart. False: as a call-chain child (the rule before)."""
    climb_onset: bool = False
    """With `climb_s` (and `climb_owns` False), a climbing child's names stay caller names but its start moves the group's
    latest onset (not its reach): the later bridge is admitted within caller_window_s of it, while a new fault at the
    service it named still relates only near that onset. Measured (casc22, c8/c9): it mends the noise sets, and costs
    cascades 201 as `climb_owns` does, so the moved onset is that cost: a group made young again folds another fault's
    group in within merge_window_s (foreign roots merged there 24.1k -> 29.8k pairs without the file). Off by default.
    False: the rule before."""
    burst_machines: bool = False
    """Burst-follow (`burst_follow`) also for a container's own metric: a child that names its service and machines only
    (values of `shared_labels`, no call: `relations.machine_only`; MicroSS's `redis/docker_cpu_core_6_pct` names redis
    and its host `0.0.0.3`), relates to no open group and would open its own, joins the one group of its scope that took
    a child starting within burst_s before it, when no other group's child started then, and only when it starts
    within burst_s of that group's first alert: the cause's opening burst (`engine._burst`). A host's metric names one
    thing and follows any burst; this one names two, so it follows only the first burst, where a piece of a fault
    comes and a second cause, started later, has its own. Read on the development "noise everywhere" sets (issue 17,
    session 37, noise23): the largest class of split pairs where the 60 s time-gap baseline is right is a fault's
    pieces sharing no name with its main group and starting within 20 s of its latest onset; the container metrics
    of middleware (redis, zookeeper) named beside their host are the part of it time can take. False: the rule
    before (only a child naming one thing follows a burst)."""
    lone_joins: bool = False
    """A group that is one alert which started alone (`engine._lone`, as for `lone_apart`) takes no child that starts more
    than burst_s after it: such a child came only by company (`company`), the burst of another cause it started in, and
    a stray background alert is no cause for that burst to join (`engine._choose`). Read on the development "noise
    everywhere" sets (issue 17, session 37, noise23): with the file, 6317's first fault lost its zookeeper container
    metrics (24 alerts, 5.1k split pairs) to a zookeeper background alert 53 s before the fault, which they joined by
    name in the company of their fault's burst, while the fault's main group related to them only by a path; the two
    never fold (a path folds nothing). The mirror of `lone_apart`, which keeps such a group from being folded into a
    cause. False: the rule before."""
    tenants_apart_labels: bool = True
    """`tenants_apart` without a topology file, by labels: a child naming an instance or pod (a `tenant_labels` label:
    a tenant of its host by its own labels, not the host's own metric) is never the target of a group it relates to
    only by a shared machine label (`relations.labelled_tenant`, `engine._tenants_apart`). Read on the development
    cascades without the file (issue 17, session 37, casc23): another fault's root symptom on another service of the
    same host joined a fault's group by the host alone, or the fault's own root joined the group such a symptom had
    opened (4-16k wrongly merged pairs on six seeds); with the file `tenants_apart` already keeps them apart. Two
    tenants of one host failing at once page apart unless something else relates them. False: the rule before. True
    by default since session 37 (casc23), with `machine_follow_filed` False: it met the thirteenth round's rule
    (cascade family mean +0.0079 on top of `climb_s`, noise +0.0001, nothing fell; benchmarks/RESULTS.md)."""
    tenant_labels: tuple[str, ...] = ("instance", "pod")
    """The labels that name a tenant of a host (`tenants_apart_labels`)."""
    lone_habit: bool = False
    """With `lone_joins`, a lone group refuses a later child only when its alert is a habit: its key already had another
    incident of the scope, started before it, among the groups stage 2 holds (`engine._habitual`). A stray background
    alert recurs; a new fault's root does not, and one that alerts every 20-40 s may still be one alert when its own
    trace error comes just past burst_s (development cascades 6397, fault 35, issue 17 session 37, noise23/noise24).
    From the store alone, so replay, stream and restart agree. False: `lone_joins` as it was (any lone group)."""
    path_folds_labelled: bool = True
    """With a topology file, a group a bridging child relates to by a topology path folds as the labels alone would relate
    them, when they do and that relation is enough (`engine._as_labelled`): a shared host within burst_s of the group's
    latest onset folds as it does without the file. A path never folds (`engine._folds`), and a path found first hides
    the shared machine, so the file split what the labels fold: on the development noise sets (issue 17, session 38,
    noise25) the file was worse than none on 6317 and 101 "between" and 6317 "everywhere", each by one fault cut in two
    (6317 fault 0: its middleware container metrics joined a stray alert of their service and the fault's burst, one
    edge and one host away, stayed apart). `_admitted` already lets the labels decide where a path does not admit; this
    is the same for folds. False: the rule before (a path never folds). True by default since session 39: with
    `late_symptom_s` 60 and `borrowed_callers` it met the fifteenth round's decision rule (benchmarks/RESULTS.md)."""
    late_symptom_s: float = 60.0
    """A child that names no failed call (no `caller` or `callee` label: its service's own metric or log symptom), of a
    key its group does not hold, that starts alone (no other incident of its scope within burst_s before it, as for
    `company`) more than late_symptom_s after the group's latest child onset, is not related to the group by a name
    (`engine._late_symptom`): the outage stopped growing a while ago, and a new symptom of its own at a service the
    group names, starting a burst of its own, is another root failing, which must page on its own. Symptoms that come
    together (a wave of one outage's metrics) still join; so does a key the group holds (the symptom going on), and a
    machine or path relation is left to its own rules. Read on the development cascades (issue 17, session 38,
    casc24): another fault's root symptom merged into a group is the largest wrongly merged class on every seed; such
    children refused at 120 s on cascades 201, 6211, 6247, 6427 were 435 alerts of another fault against 16 of the
    group's own; on rca-micross the only ones were six metrics of one fault arriving in bursts, none alone. 0: never
    (the rule before). 60 s by default since session 39, with `borrowed_callers` and `path_folds_labelled`: together
    they met the fifteenth round's decision rule (cascade family mean +0.011 without the file, +0.013 with it; noise
    +0.0002 / +0.003; no set down more than 0.0015; benchmarks/RESULTS.md)."""
    borrowed_callers: bool = True
    """A name the group holds as borrowed (it came with a child joined by a topology path: `GroupState.borrowed`) that a
    later child joining otherwise carries only as a caller, or brings while joined by a call chain (its names heard),
    becomes a name the group knows only as a caller (`engine._absorb`), as it would be had that child brought it first,
    as it does without the file. Before, it became the group's own name, stronger than the labels alone make it: on the
    development topology cascades 8101 (issue 17, session 38, casc25) fault 21's hop-2 trace error joined by a path
    (callee `svc14-1`), the root's trace error named `svc14-1` as a caller, and another fault's trace errors into
    `svc14-1` 124 s after the latest onset then folded that fault's group into fault 21's, where without the file the
    caller window kept them apart. False: the rule before. True by default since session 39 (the fifteenth round, with
    `late_symptom_s` 60 and `path_folds_labelled`)."""
    burst_companions: bool = False
    """Burst-follow (`burst_follow`) for a container's own metric (`relations.machine_burst_link`, as `burst_machines`)
    at any burst of the one group taking it, not only its opening one, when the metric's service kept company with that
    group's services before: an earlier child of that service sat in another group of the scope stage 2 holds together
    with an earlier child of a service this group holds, neither joined by a topology path or a call chain alone
    (`engine._kept_company`). Time and this history are its evidence: a middleware container (redis, zookeeper) that
    came with redisservice's outage before is a side of the one bursting now, and a renamed twin failing 30 s later in
    the same scope (MicroSS x2) has no such history with the first. With a topology file too, when no path relates the
    child (unlike `burst_machines`): the history is evidence the file does not hold, and a history the file's paths
    made is not counted (on cascades 201 counting it cost 0.0035 with the file, scratch). Read on the
    development "noise everywhere" sets (issue 17, session 39, noise26): the largest class of split pairs where the
    60 s baseline is right, with `burst_machines` on, was still such metrics opening their own parent 16-225 s into
    their fault, within 0.4-15 s of the group's latest onset, that group the only one taking a child then. From the
    store alone, as `lone_habit` is, so replay, stream and restart agree. False: the rule before."""
    victims_first_apart: bool = True
    """A group a bridging child relates to only by a name the child carries as a caller (`victims`: its failed call came
    out of that group's service or instance) is not folded into the group the child relates to by its own names (the
    callee's side of the call) when both groups were opened by a symptom of their own (no failed call:
    `GroupState.rooted`) and the caller's began first; the child joins the callee's group (`engine._victim_first`). A
    failure climbs the call graph from callee to caller: a caller that failed before its callee was not hurt by it,
    and the callee's own failure is no step of the caller's, so two roots failing at the same moment page apart, while
    a callee that failed first still folds its victims in, and a group opened by a trace error (a failure seen from a
    call, as MicroSS's faults open theirs) folds as before. Read on the development cascades (issue 17, session 39,
    casc26): another fault's root opening a parent a moment before its owner's root is a large wrongly merged class
    (fault 120's svc21 then fault 208's svc23 20 s later, folded by svc23's trace error from svc21-2). Without the
    "own symptom" clause it cost rca-micross and its noise sets (MicroSS's faults open with trace errors of callers).
    False: the rule before (the caller's group folds as any other). True by default since session 39: it met the
    sixteenth round's decision rule (cascade family mean 0.8484 -> 0.8532 without the file, 0.8744 -> 0.8795 with it;
    noise +0.0000 / +0.0002; no set down more than 0.0011; benchmarks/RESULTS.md). Its cost, read on noise between 6199:
    a MicroSS fault whose metrics open on a caller before its callee pages twice."""
    late_placed: bool = False
    """A late child (its first alert behind the point stage 2 had already released to when it arrived) is placed by its
    first alert among the groups still open: one that stopped accepting while that alert lay within its gap is a
    candidate as an accepting one is (`engine._closed_around`), and a child that carries it past the release point
    makes it accept again. In the stream a child is late when its stage-1 partition said idle and then got a backlog
    (`watermark`'s known limit): session 39's quick chaos soak (across39) split a fault posted across the broker restart
    in two causes that way, where the replay has one. A group already resolved is not reopened. False: the rule before
    (a late child joins only a group still accepting; on the jittered noise sets the replay has such children too)."""
    idle_placed: bool = True
    """`late_placed`'s placement for the stream's late children that were on time for their own stage-1 partition
    (`watermark.on_own_time`: a first alert no earlier than the previous mark of its record's sources, less the
    lateness): late for stage 2 only because the low watermark moved on while their source said idle (session 39's
    chaos soak split a fault posted across the broker restart so). Any other late child keeps the rule of
    `late_placed`. The replay passes no marks, so no child there meets the condition and no replay changes: True by
    default since session 40 (late40: the 132 replays of `benchmarks/replay_digests.py` identical to main's).
    False: the rule before (a late child joins only a group still accepting)."""

    lone_wait_s: float = 60.0
    """A group that is one alert which started alone (`engine._lone`, as for `lone_apart`) takes no child, other than
    its own key continuing, that starts more than lone_wait_s after that alert and came with company (one that
    `company` refuses keeps that refusal and its reason; `engine._stray`); the child goes where it would have gone
    without that group, or opens its own parent, saying why. A fault's first alert is
    followed within a burst by its next; a lone alert that nothing followed for that long is background, and an
    outage starting later at its service is not its consequence. `lone_joins` is this at burst_s, which cost a
    cascade root alerting every 20-40 s (noise23/noise24); lone_wait_s waits longer. Read on the development "noise
    everywhere" sets (issue 17, session 41, noise42): a fault's alerts joining a parent a stray alert opened by their
    shared service are the second class of pairs the 60 s baseline gets right and stage 2 wrong (24k pairs over the
    nine sets); on rca-micross no parent opened by one alert took its second child 40 s or more after it. Its cost:
    a root that alerts once and again more than lone_wait_s later, with another fault's burst (generated cascades
    8101). 60 since issue 17's eighteenth round (session 41); 0: never (the rule before)."""

    climb_late_s: float = 0.0
    """Calls climbing, learnt late (`engine._climbed_late`): when a child's alert makes a group opened by a symptom of its
    own (`GroupState.rooted`) know as a caller a service H it knew no caller of before (H's own calls into this cause
    failed), a group of its scope that is only failed
    calls into H (opened by a trace error, every name of its own H or an instance of H), which began after the group
    did and alerted within climb_late_s before that alert, is folded in; its children join as calls climbing do (`climb_s`: their names
    relate as caller names, they move no onset and no reach). Not when another group of the scope knows a caller of H
    too. Such a group opened before any cause knew H's calls were failing, so `climb_s` had no name to climb by: R
    fails, U's calls into H fail, then H's calls into R. Read on the development cascades without the file (issue 17,
    session 41, casc42): hop-2 trace errors opened apart are the largest class of wrongly split pairs (a perfect fix
    of the class is worth +0.039 on the cascade mean), and on cascades 201 about 43% of them are pieces whose H -> R
    trace error came later and joined the root's group. Only a rooted group learns so: on the development noise sets
    (MicroSS's faults open with trace errors) a stray trace error folded into a fault's trace-opened group moved a later
    bridge and split the fault (noise everywhere 6113, -0.0011). 0: never (the rule before)."""

    def __post_init__(self) -> None:
        if min(self.gap_s, self.lateness_s, self.merge_window_s, self.retention_s, self.burst_s,
               self.caller_window_s, self.climb_s, self.late_symptom_s, self.lone_wait_s, self.climb_late_s) < 0:
            raise ValueError("gap_s, lateness_s, merge_window_s, retention_s, burst_s, caller_window_s, climb_s, "
                             "late_symptom_s, lone_wait_s and climb_late_s must not be negative")
        if self.max_hops < 0:
            raise ValueError("max_hops must not be negative")
        if self.lull_s < 0 or self.recur_apart_s < 0:
            raise ValueError("lull_s and recur_apart_s must not be negative")
        if self.resume_below < 0:
            raise ValueError("resume_below must not be negative")
        if self.max_children < 1 or self.max_entities < 1:
            raise ValueError("max_children and max_entities must be at least 1")


DEFAULT_GROUPING = GroupingConfig()
