package io.omai.agent.ledger;

import com.google.errorprone.annotations.concurrent.GuardedBy;
import io.omai.agent.config.AgentConfig;
import io.omai.agent.gpu.GpuDevice;
import io.omai.agent.quota.shm.AllocationFiles;
import io.omai.agent.quota.shm.AllocationSpec;
import io.omai.agent.quota.shm.ComputeMode;
import io.omai.agent.quota.shm.DeviceQuota;
import io.omai.agent.quota.shm.ShmLayout;
import io.omai.placement.MilliGpu;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The node's allocation state: which milli-GPU device IDs belong to which allocation, and each allocation's
 * control and usage files. It is the only owner of that state; everything else asks it.
 *
 * <p>Every change is checkpointed (see {@link LedgerCheckpoint}), off the request path by {@link CheckpointWriter};
 * a request the ledger refuses ({@link LedgerException}) changes nothing. Allocations are named by their device IDs, so a repeated
 * Allocate of the same IDs returns the same allocation. kubelet has no Deallocate: {@link #reconcile} releases
 * what no container holds any more.
 *
 * <p>Thread-safe: one lock; every operation is short (a few small files).
 */
public final class AllocationLedger implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(AllocationLedger.class);

    /** The checkpoint's file name in the state directory. */
    public static final String CHECKPOINT_FILE = "ledger.json";
    /** The directory, in the state directory, holding one directory per allocation. */
    public static final String ALLOCATIONS_DIR = "allocations";
    /** The directory, in the state directory, of pre-created allocation files. */
    public static final String SPARES_DIR = "spares";
    /** The directory, in the state directory, where released allocations wait to be deleted. */
    public static final String DISCARDED_DIR = "discarded";

    private final List<Runnable> changeListeners = new java.util.concurrent.CopyOnWriteArrayList<>();
    private final java.util.concurrent.ExecutorService changeNotifier =
            java.util.concurrent.Executors.newSingleThreadExecutor(
                    Thread.ofPlatform().name("ledger-changes").daemon().factory());
    private static final int SPARES = 4;
    // displaced allocations' files wait here before they go: an init container whose devices an app container
    // of its pod reused is admitted with the pod but starts later, and needs its files then
    private final java.util.concurrent.ScheduledExecutorService displacedFiles =
            java.util.concurrent.Executors.newSingleThreadScheduledExecutor(Thread.ofPlatform()
                    .name("displaced-allocation-files")
                    .daemon()
                    .factory());
    private final Map<String, Allocation> displacedWaiting = new java.util.concurrent.ConcurrentHashMap<>();
    private volatile Duration displacedFilesGrace = Duration.ofSeconds(60);

    private final List<GpuDevice> gpus;
    private final Map<String, GpuDevice> gpusByUuid = new LinkedHashMap<>();
    // every valid device ID of this node, so requests of thousands of IDs are looked up, not parsed
    private final Map<String, MilliGpuId> knownIds = new HashMap<>();
    private final AgentConfig.Sharing sharing;
    private final Path allocationsDir;
    private final LedgerCheckpoint checkpoint;
    private final Clock clock;
    private CheckpointWriter writer;
    private SpareAllocationFiles spares;
    private DiscardedDirectories discarded;

    private final Object lock = new Object();

    @GuardedBy("lock")
    private final Map<String, Allocation> allocations = new LinkedHashMap<>();
    // device ID -> allocation id
    @GuardedBy("lock")
    private final Map<MilliGpuId, String> owners = new HashMap<>();
    // allocations on a GPU the node does not have (lost, replaced, tenancy.gpus narrowed). Kept
    // and checkpointed until PodResources shows them released, but never served: no files, quotas or snapshots.
    @GuardedBy("lock")
    private final Map<String, Allocation> onMissingGpus = new LinkedHashMap<>();
    // held device sets already reported as not adoptable, so each is logged once
    @GuardedBy("lock")
    private final Set<String> reportedUnadoptable = new HashSet<>();

    private Instant openedAt;
    // allocations whose files are being made, so two Allocates of one ID set cannot race
    @GuardedBy("lock")
    private final Set<String> preparing = new HashSet<>();

    private AllocationLedger(List<GpuDevice> gpus, AgentConfig.Sharing sharing, Path stateDir, Clock clock) {
        this.gpus = List.copyOf(gpus);
        for (GpuDevice gpu : gpus) {
            if (gpu.uuid().length() > MilliGpuId.maxUuidLength()) {
                throw new IllegalArgumentException("GPU UUID " + gpu.uuid() + " is longer than "
                        + MilliGpuId.maxUuidLength() + " characters; its device IDs would exceed the "
                        + MilliGpuId.MAX_ID_LENGTH + " kubelet allows");
            }
            gpusByUuid.put(gpu.uuid(), gpu);
            for (int slot = 0; slot < MilliGpu.PER_GPU; slot++) {
                MilliGpuId id = new MilliGpuId(gpu.uuid(), slot);
                knownIds.put(id.id(), id);
            }
        }
        this.sharing = sharing;
        this.allocationsDir = stateDir.resolve(ALLOCATIONS_DIR);
        this.checkpoint = new LedgerCheckpoint(stateDir.resolve(CHECKPOINT_FILE));
        this.clock = clock;
    }

    /**
     * Opens the ledger of a state directory: reads the checkpoint (if any) and makes sure every recorded
     * allocation's files exist. Never refuses because of the checkpoint's content: an unusable file is kept aside
     * and the ledger starts empty, entries that fail validation are set aside (see {@link LedgerCheckpoint}), and
     * reconciliation then adopts what containers hold. Allocations on a GPU this node does not have are kept
     * (event {@code allocation_gpu_missing}) but not served.
     *
     * @throws IOException when the state directory cannot be prepared
     */
    // GuardedBy: the new ledger is reached by no other thread until returned; its CheckpointWriter calls the
    // onMissingGpus supplier only in submit, under the ledger's lock
    @SuppressWarnings("GuardedBy")
    public static AllocationLedger open(List<GpuDevice> gpus, AgentConfig.Sharing sharing, Path stateDir, Clock clock)
            throws IOException {
        Files.createDirectories(stateDir);
        for (String own : List.of(ALLOCATIONS_DIR, SPARES_DIR, DISCARDED_DIR)) {
            ownDirectory(stateDir.resolve(own));
        }
        AllocationLedger ledger = new AllocationLedger(gpus, sharing, stateDir, clock);
        ledger.openedAt = clock.instant();
        LedgerCheckpoint.Contents contents = ledger.checkpoint.read(ledger.openedAt);
        for (Allocation allocation : contents.allocations()) {
            Optional<String> missingGpu = allocation.gpuUuids().stream()
                    .filter(uuid -> !ledger.gpusByUuid.containsKey(uuid))
                    .findFirst();
            if (missingGpu.isPresent()) {
                ledger.onMissingGpus.put(allocation.id(), allocation);
                log.warn(
                        "event=allocation_gpu_missing allocation={} gpu={} owner=\"{}\" detail=\"kept until "
                                + "PodResources shows it released; not served\"",
                        allocation.id(),
                        missingGpu.get(),
                        allocation.owner());
                continue;
            }
            ledger.record(allocation);
            if (!ledger.hasOwnFiles(allocation)) {
                try {
                    ledger.discardDirectoryOf(allocation); // whatever is there instead (a link, a partial one)
                    ledger.writeFiles(allocation);
                    log.warn(
                            "event=allocation_files_recreated allocation={} owner=\"{}\"",
                            allocation.id(),
                            allocation.owner());
                } catch (IOException | RuntimeException e) {
                    log.error(
                            "event=allocation_files_failed allocation={} owner=\"{}\" error=\"{}\"",
                            allocation.id(),
                            allocation.owner(),
                            e.toString());
                }
            }
        }
        ledger.writer = new CheckpointWriter(ledger.checkpoint, () -> List.copyOf(ledger.onMissingGpus.values()));
        ledger.spares = new SpareAllocationFiles(stateDir.resolve(SPARES_DIR), SPARES);
        ledger.discarded = new DiscardedDirectories(stateDir.resolve(DISCARDED_DIR));
        if (contents.needsRewrite()) {
            synchronized (ledger.lock) {
                ledger.writer.submit(List.copyOf(ledger.allocations.values())); // without what was set aside
            }
        }
        log.info(
                "event=ledger_opened checkpoint={} allocations={} on_missing_gpus={} set_aside={} repaired={} "
                        + "checkpoint_unusable={} gpus={}",
                ledger.checkpoint.file(),
                ledger.allocations.size(),
                ledger.onMissingGpus.size(),
                contents.setAside().size(),
                contents.repaired().size(),
                contents.unusable() != null,
                gpus.size());
        return ledger;
    }

    /**
     * Makes {@code directory} a real directory of ours: anything else in its place (a file, a link that could
     * lead outside the state directory) is moved aside as {@code <name>.corrupt-<millis>} first.
     */
    private static void ownDirectory(Path directory) throws IOException {
        if (Files.exists(directory, java.nio.file.LinkOption.NOFOLLOW_LINKS)
                && !Files.isDirectory(directory, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
            Path aside = directory.resolveSibling(directory.getFileName() + ".corrupt-" + System.currentTimeMillis());
            Files.move(directory, aside, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
            log.error(
                    "event=state_directory_replaced dir={} kept_aside={} reason=\"not a directory (a file or "
                            + "a link)\"",
                    directory,
                    aside);
        }
        Files.createDirectories(directory);
    }

    /** Allocations kept from the checkpoint whose GPU this node does not have; not served (see {@link #open}). */
    public List<Allocation> allocationsOnMissingGpus() {
        synchronized (lock) {
            return List.copyOf(onMissingGpus.values());
        }
    }

    /** The GPUs the ledger shares out, in NVML index order. */
    public List<GpuDevice> gpus() {
        return gpus;
    }

    /** Every allocation, in the order they were made. */
    public List<Allocation> allocations() {
        synchronized (lock) {
            return List.copyOf(allocations.values());
        }
    }

    public Optional<Allocation> allocation(String allocationId) {
        synchronized (lock) {
            return Optional.ofNullable(allocations.get(allocationId));
        }
    }

    /**
     * The directory holding an allocation's control and usage files.
     *
     * @throws IllegalArgumentException when the allocation's name is not one the ledger derives ({@code a-} and
     *     16 hex digits): a name is never a path
     */
    public Path directory(Allocation allocation) {
        if (!ALLOCATION_NAME.matcher(allocation.id()).matches()) {
            throw new IllegalArgumentException("allocation name '" + allocation.id() + "' is not a-<16 hex digits>");
        }
        return allocationsDir.resolve(allocation.id());
    }

    /** Whether the allocation's directory is a real directory (not a link) holding its two regular files. */
    private boolean hasOwnFiles(Allocation allocation) {
        Path directory = directory(allocation);
        java.nio.file.LinkOption noFollow = java.nio.file.LinkOption.NOFOLLOW_LINKS;
        return Files.isDirectory(directory, noFollow)
                && Files.isRegularFile(directory.resolve(AllocationFiles.CONTROL), noFollow)
                && Files.isRegularFile(directory.resolve(AllocationFiles.USAGE), noFollow);
    }

    private static final java.util.regex.Pattern ALLOCATION_NAME = java.util.regex.Pattern.compile("a-[0-9a-f]{16}");

    private void discardDirectoryOf(Allocation allocation) {
        Path directory = directory(allocation);
        if (Files.exists(directory, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
            if (discarded != null) {
                discarded.discard(directory);
            } else {
                DiscardedDirectories.deleteQuietly(directory);
            }
        }
    }

    public Path checkpointFile() {
        return checkpoint.file();
    }

    public GpuDevice gpu(String uuid) {
        return gpusByUuid.get(uuid);
    }

    /**
     * The IDs kubelet should allocate, chosen from its candidates (see {@link PreferredAllocationPolicy}).
     *
     * @throws LedgerException.InvalidRequest unknown IDs, a bad size, must-include IDs that would split a share
     * @throws LedgerException.NoFit no GPU (or not enough whole GPUs) among the candidates can hold it
     */
    public List<MilliGpuId> preferredAllocation(Collection<String> available, Collection<String> mustInclude, int size)
            throws LedgerException {
        List<MilliGpuId> candidates = parseKnown("available_deviceIDs", available);
        List<MilliGpuId> required = parseKnown("must_include_deviceIDs", mustInclude);
        return PreferredAllocationPolicy.choose(gpus, candidates, required, size);
    }

    /**
     * Records the allocation of these device IDs and creates its files. Idempotent: the same IDs again return the
     * same allocation. IDs that kubelet hands out again belonged to a container that is gone (kubelet only hands
     * out IDs it considers free); the stale allocation is released.
     *
     * @throws LedgerException.InvalidRequest unknown or malformed IDs, duplicates, a share spanning GPUs
     * @throws LedgerException.StorageFailed the files could not be created (nothing recorded)
     */
    public Allocation allocate(Collection<String> deviceIds) throws LedgerException {
        return allocate(deviceIds, AllocationClaim.UNKNOWN);
    }

    /**
     * As {@link #allocate(Collection)}, recording whom the allocation is for: its pod, container and tenant, and
     * the memory quota per GPU ({@code claim.memoryBytesPerGpu()}, 0 for the sharing policy's default). A repeat
     * with the same IDs returns the allocation made first; if that one's claim was unknown it learns this one.
     */
    public Allocation allocate(Collection<String> deviceIds, AllocationClaim claim) throws LedgerException {
        try (Pending pending = prepare(deviceIds, claim)) {
            return pending.commit();
        }
    }

    /**
     * The first half of {@link #allocate(Collection, AllocationClaim)}: checks the IDs' shape and creates the
     * allocation's files (disk work), recording nothing. {@link Pending#commit} then records it in memory only,
     * so callers can commit under a lock of their own (the reservation book's) without doing disk work there.
     * Closing the handle removes the files of an uncommitted allocation, or schedules the removal of the files of
     * the allocations a commit displaced.
     *
     * @throws LedgerException.InvalidRequest as {@link #allocate}, or an Allocate of the same IDs in progress
     * @throws LedgerException.StorageFailed the files could not be created (nothing recorded)
     */
    public Pending prepare(Collection<String> deviceIds, AllocationClaim claim) throws LedgerException {
        List<MilliGpuId> ids = validateShape(deviceIds);
        String id = allocationId(ids);
        Allocation repeated;
        synchronized (lock) {
            repeated = allocations.get(id);
            if (repeated == null && !preparing.add(id)) {
                throw new LedgerException.InvalidRequest("an Allocate of the same " + ids.size()
                        + " device IDs (allocation " + id + ") is in progress; kubelet allocates a container once");
            }
        }
        if (repeated != null) {
            ensureFiles(repeated);
            return new Pending(id, ids, claim, false, false);
        }
        Allocation created = new Allocation(id, ids, clock.instant(), claim.owner(), claim);
        Path directory = directory(created);
        try {
            discarded.discard(directory); // left over by a crash before its checkpoint, if there
            if (!spares.claim(directory, spec(created))) {
                writeFiles(created);
            }
        } catch (IOException | RuntimeException e) {
            DiscardedDirectories.deleteQuietly(directory);
            synchronized (lock) {
                preparing.remove(id);
            }
            throw new LedgerException.StorageFailed(
                    "cannot create the files of allocation " + id + " in " + directory + ": " + e.getMessage(), e);
        }
        return new Pending(id, ids, claim, true, false);
    }

    /**
     * As {@link #prepare}, for IDs whose recorded allocation belongs to a container that is gone (its pod was
     * deleted) and which a new container receives, exactly: the files are made afresh for the new claim (the
     * old container's usage goes with it) and {@link Pending#commit} replaces the record.
     */
    public Pending prepareTakeover(Collection<String> deviceIds, AllocationClaim claim) throws LedgerException {
        List<MilliGpuId> ids = validateShape(deviceIds);
        String id = allocationId(ids);
        synchronized (lock) {
            if (!preparing.add(id)) {
                throw new LedgerException.InvalidRequest("an Allocate of the same " + ids.size()
                        + " device IDs (allocation " + id + ") is in progress; kubelet allocates a container once");
            }
        }
        Allocation created = new Allocation(id, ids, clock.instant(), claim.owner(), claim);
        try {
            writeFiles(created);
        } catch (IOException | RuntimeException e) {
            synchronized (lock) {
                preparing.remove(id);
            }
            throw new LedgerException.StorageFailed(
                    "cannot create the files of allocation " + id + " in " + directory(created) + ": " + e.getMessage(),
                    e);
        }
        return new Pending(id, ids, claim, false, true);
    }

    /**
     * The allocations these IDs would displace: those holding any of them, other than the allocation of exactly
     * these IDs (a repeat). kubelet hands out only IDs it considers free, and it frees all of a departed
     * container's IDs at once, so an allocation with any of its IDs handed out again belongs to a container
     * that is gone; all of it is released, even where only some of its IDs are reused.
     */
    public Set<String> displacedBy(Collection<MilliGpuId> deviceIds) {
        Set<MilliGpuId> requested = new HashSet<>(deviceIds);
        String self = allocationId(requested.stream().sorted().toList());
        synchronized (lock) {
            Set<String> displaced = new TreeSet<>();
            for (MilliGpuId device : requested) {
                String holder = owners.get(device);
                if (holder != null && !holder.equals(self)) {
                    displaced.add(holder);
                }
            }
            return displaced;
        }
    }

    /** The recorded allocation of exactly these IDs, if any (malformed IDs: none). */
    public Optional<Allocation> allocationWithIds(Collection<String> deviceIds) {
        List<MilliGpuId> ids;
        try {
            ids = validateShape(deviceIds);
        } catch (LedgerException e) {
            return Optional.empty();
        }
        synchronized (lock) {
            return Optional.ofNullable(allocations.get(allocationId(ids)));
        }
    }

    /**
     * Every allocation holding any of these IDs (IDs the node does not know are skipped). Those kubelet offers as
     * available, or hands out in an Allocate, belong to departed containers.
     */
    public Set<String> holdersOf(Collection<String> deviceIds) {
        synchronized (lock) {
            Set<String> holders = new TreeSet<>();
            for (String text : deviceIds) {
                MilliGpuId id = text == null ? null : knownIds.get(text);
                String holder = id == null ? null : owners.get(id);
                if (holder != null) {
                    holders.add(holder);
                }
            }
            return holders;
        }
    }

    /**
     * The first {@code milli} slots of GPU {@code uuid} that no allocation holds, as device IDs: the capacity a DRA
     * claim consuming {@code milli} of that GPU takes in the ledger. Whether they are still free is checked again
     * at commit ({@link #prepareDra}).
     *
     * @throws LedgerException.InvalidRequest an unknown GPU or a size outside 1..1000
     * @throws LedgerException.NoFit fewer free slots than asked
     */
    public List<String> freeSlots(String uuid, int milli) throws LedgerException {
        if (!gpusByUuid.containsKey(uuid)) {
            throw new LedgerException.InvalidRequest(
                    "GPU " + uuid + " is not one of this node's GPUs; expected one of " + gpusByUuid.keySet());
        }
        if (milli < 1 || milli > MilliGpu.PER_GPU) {
            throw new LedgerException.InvalidRequest(
                    milli + " milli of GPU " + uuid + " is outside 1.." + MilliGpu.PER_GPU);
        }
        synchronized (lock) {
            List<String> free = new ArrayList<>(milli);
            for (int slot = 0; slot < MilliGpu.PER_GPU && free.size() < milli; slot++) {
                MilliGpuId id = new MilliGpuId(uuid, slot);
                if (!owners.containsKey(id)) {
                    free.add(id.id());
                }
            }
            if (free.size() < milli) {
                throw new LedgerException.NoFit("GPU " + uuid + " has " + free.size() + " milli free; " + milli
                        + " asked (" + (MilliGpu.PER_GPU - free.size()) + " held by other allocations)");
            }
            return free;
        }
    }

    /**
     * As {@link #prepare}, for a DRA claim ({@code claim.isDra()}): its {@link Pending#commit} never displaces
     * (a slot taken meanwhile refuses the commit, and the caller picks again) and refuses a GPU the
     * device-plugin path holds.
     */
    public Pending prepareDra(Collection<String> deviceIds, AllocationClaim claim) throws LedgerException {
        if (!claim.isDra()) {
            throw new IllegalArgumentException("prepareDra needs a claim with a DRA claim UID");
        }
        return prepare(deviceIds, claim);
    }

    /** The allocations of the device-plugin path (not DRA claims) on GPU {@code uuid}. */
    public List<Allocation> devicePluginAllocationsOn(String uuid) {
        synchronized (lock) {
            return allocations.values().stream()
                    .filter(a -> !a.claim().isDra() && a.milliPerGpu().containsKey(uuid))
                    .toList();
        }
    }

    /** The allocations prepared for a DRA claim, by its UID (empty when none). */
    public List<Allocation> draAllocations(String claimUid) {
        synchronized (lock) {
            return allocations.values().stream()
                    .filter(a -> a.claim().draClaimUid().equals(claimUid))
                    .toList();
        }
    }

    /**
     * Releases a DRA claim's allocations (NodeUnprepareResources): records gone, checkpoint written, files
     * removed. Idempotent: an unknown claim releases nothing.
     *
     * @return the allocations released
     */
    public List<Allocation> releaseDra(String claimUid) {
        List<Allocation> released = new ArrayList<>();
        synchronized (lock) {
            for (Allocation allocation : List.copyOf(allocations.values())) {
                if (allocation.claim().draClaimUid().equals(claimUid)) {
                    released.add(forget(allocation.id()));
                }
            }
            onMissingGpus.values().removeIf(a -> a.claim().draClaimUid().equals(claimUid));
            if (released.isEmpty()) {
                return List.of();
            }
            writer.submit(List.copyOf(allocations.values()));
            changed();
        }
        for (Allocation allocation : released) {
            discarded.discard(directory(allocation));
            log.info(
                    "event=allocation_released reason=dra_unprepared allocation={} claim={} owner=\"{}\" gpus={}",
                    allocation.id(),
                    claimUid,
                    allocation.owner(),
                    allocation.milliPerGpu());
        }
        return List.copyOf(released);
    }

    /**
     * Why recording {@code ids} for {@code claim} would break "one GPU, one path", or null: a GPU holds allocations
     * of the device-plugin path or DRA claims, never both (kubelet's device manager and the DRA scheduler count
     * the same capacity without seeing each other). A DRA claim also never displaces: its slots must be free.
     */
    @GuardedBy("lock")
    private String pathConflict(List<MilliGpuId> ids, AllocationClaim claim, Allocation repeated) {
        Set<String> gpus = new TreeSet<>();
        ids.forEach(id -> gpus.add(id.uuid()));
        for (Allocation other : allocations.values()) {
            boolean sameClaim = claim.isDra() && other.claim().draClaimUid().equals(claim.draClaimUid());
            boolean repeat = repeated != null
                    && other.id().equals(repeated.id())
                    && other.claim().isDra() == claim.isDra();
            if (repeat || sameClaim) {
                continue;
            }
            for (String uuid : other.gpuUuids()) {
                if (!gpus.contains(uuid)) {
                    continue;
                }
                if (claim.isDra() && !other.claim().isDra()) {
                    return "GPU " + uuid + " is given out by the device-plugin path (allocation " + other.id()
                            + ", owner '" + other.owner() + "'); a GPU serves one path at a time, so DRA claim "
                            + claim.draClaimUid() + " cannot use it until that allocation is released";
                }
                if (!claim.isDra() && other.claim().isDra()) {
                    return "GPU " + uuid + " holds DRA claim " + other.claim().draClaimUid() + " (allocation "
                            + other.id() + "); a GPU serves one path at a time, so the device plugin cannot give "
                            + "it out until the claim is unprepared";
                }
            }
        }
        if (claim.isDra() && repeated == null) {
            for (MilliGpuId id : ids) {
                String holder = owners.get(id);
                if (holder != null) {
                    return "slot " + id + " was taken by allocation " + holder + " while DRA claim "
                            + claim.draClaimUid() + " was being prepared; expected free slots (pick again)";
                }
            }
        }
        return null;
    }

    /**
     * An allocation whose files exist but which is not recorded until {@link #commit}. Not thread-safe: one
     * caller commits and closes it.
     */
    public final class Pending implements AutoCloseable {
        private final String id;
        private final List<MilliGpuId> ids;
        private final AllocationClaim claim;
        private final boolean ownsFiles;
        private final boolean takeover;
        private Allocation committed;
        private List<Allocation> displaced = List.of();

        private Pending(String id, List<MilliGpuId> ids, AllocationClaim claim, boolean ownsFiles, boolean takeover) {
            this.id = id;
            this.ids = ids;
            this.claim = claim;
            this.ownsFiles = ownsFiles;
            this.takeover = takeover;
        }

        /** The claim the allocation is recorded with. */
        public AllocationClaim claim() {
            return claim;
        }

        /** The allocation's ID (a hash of its device IDs). */
        public String allocationId() {
            return id;
        }

        public List<MilliGpuId> deviceIds() {
            return ids;
        }

        /**
         * Records the allocation (memory only, no disk work): releases the allocations it displaces (see
         * {@link #displacedBy}), or, for a repeat, returns the allocation made first.
         *
         * @throws LedgerException.StorageFailed only when a repeated allocation was released since
         *     {@link #prepare} (its files are gone; kubelet retries the Allocate)
         */
        public Allocation commit() throws LedgerException {
            if (committed != null) {
                return committed;
            }
            synchronized (lock) {
                Allocation existing = allocations.get(id);
                String conflict = pathConflict(ids, claim, existing);
                if (conflict != null) {
                    throw new LedgerException.InvalidRequest(conflict);
                }
                if (takeover) {
                    preparing.remove(id);
                    List<Allocation> released = new ArrayList<>();
                    for (String staleId : displacedBy(ids)) {
                        released.add(forget(staleId));
                    }
                    committed = new Allocation(id, ids, clock.instant(), claim.owner(), claim);
                    record(committed);
                    writer.submit(List.copyOf(allocations.values()));
                    changed();
                    log.info(
                            "event=allocation_taken_over allocation={} gpus={} owner=\"{}\" tenant={} "
                                    + "previous_owner=\"{}\" displaced={} detail=\"kubelet handed the IDs of a "
                                    + "departed container to a new one; files made afresh\"",
                            id,
                            committed.milliPerGpu(),
                            committed.owner(),
                            committed.tenant(),
                            existing == null ? "" : existing.owner(),
                            released.stream().map(Allocation::id).toList());
                    displaced = List.copyOf(released);
                    return committed;
                }
                if (existing != null) {
                    committed = existing;
                    if (existing.claim().equals(AllocationClaim.UNKNOWN) && !claim.equals(AllocationClaim.UNKNOWN)) {
                        committed = existing.withClaim(claim);
                        record(committed);
                        writer.submit(List.copyOf(allocations.values()));
                        changed();
                        log.info(
                                "event=allocation_claim allocation={} pod={} tenant={}",
                                id,
                                claim.owner(),
                                claim.tenant());
                    }
                    if (ownsFiles) {
                        preparing.remove(id);
                    }
                    return committed;
                }
                if (!ownsFiles) {
                    // the repeat's allocation was released between prepare and commit: its files are gone
                    throw new LedgerException.StorageFailed(
                            "allocation " + id + " was released while kubelet "
                                    + "repeated its Allocate; its files are gone, retry the Allocate",
                            null);
                }
                List<Allocation> released = new ArrayList<>();
                for (String staleId : displacedBy(ids)) {
                    released.add(forget(staleId));
                }
                Allocation created = new Allocation(id, ids, clock.instant(), claim.owner(), claim);
                record(created);
                preparing.remove(id);
                writer.submit(List.copyOf(allocations.values()));
                changed();
                log.info(
                        "event=allocation_created allocation={} gpus={} milli={} devices={} owner=\"{}\" "
                                + "tenant={} displaced={}",
                        id,
                        created.milliPerGpu(),
                        created.milli(),
                        ids.size(),
                        created.owner(),
                        created.tenant(),
                        released.stream().map(Allocation::id).toList());
                displaced = List.copyOf(released);
                committed = created;
                return created;
            }
        }

        /**
         * Schedules the removal of the displaced allocations' files ({@link #keepDisplacedFilesFor}), or removes
         * this allocation's files when it was not committed.
         */
        @Override
        public void close() {
            if (committed == null && takeover) {
                boolean recordGone;
                synchronized (lock) {
                    // the departed allocation keeps its (rewritten) files until released; if a reconcile or a
                    // displacement released it meanwhile, it left them to this takeover, so they go here
                    recordGone = !allocations.containsKey(id)
                            && !onMissingGpus.containsKey(id)
                            && !displacedWaiting.containsKey(id);
                    if (!recordGone) {
                        preparing.remove(id);
                    }
                }
                if (recordGone) {
                    try {
                        discarded.discard(directory(new Allocation(id, ids, clock.instant(), claim.owner(), claim)));
                    } finally {
                        synchronized (lock) {
                            preparing.remove(id); // held until the files are gone: a new prepare must not race it
                        }
                    }
                }
                return;
            }
            if (committed == null) {
                if (ownsFiles) {
                    synchronized (lock) {
                        preparing.remove(id);
                    }
                    DiscardedDirectories.deleteQuietly(
                            directory(new Allocation(id, ids, clock.instant(), claim.owner(), claim)));
                }
                return;
            }
            for (Allocation released : displaced) {
                discardDisplacedLater(released);
                log.warn(
                        "event=allocation_released reason=reassigned allocation={} owner=\"{}\" gpus={} by={} "
                                + "files_kept_for={} detail=\"kubelet handed its IDs to a new container\"",
                        released.id(),
                        released.owner(),
                        released.milliPerGpu(),
                        id,
                        displacedFilesGrace);
            }
            displaced = List.of();
        }
    }

    /**
     * Compares the ledger with what kubelet says containers hold. kubelet calls Allocate once per container with
     * all its IDs, so a container holds an allocation exactly when it holds exactly that allocation's IDs (the
     * allocation's name derives from them):
     * <ul>
     *   <li>an allocation held so is kept, and its owner becomes the container's;</li>
     *   <li>an allocation some of whose IDs another container holds is released at once when it predates this
     *       run (loaded from the checkpoint) or is past the grace period: kubelet hands out only IDs it considers
     *       free, so its own container is gone (or never started). One made in this run and younger is left to
     *       the grace period: the list may have been taken before its Allocate;</li>
     *   <li>an allocation nobody holds is released once older than the grace period (kubelet records an
     *       allocation only after Allocate returns);</li>
     *   <li>a container's IDs that no allocation matches are adopted under the name they derive, so the
     *       directory the container mounted (if a crash lost its record) becomes the tracked one again;</li>
     *   <li>once the ledger has been open for the grace period, any entry of the allocations directory no
     *       allocation accounts for (left by a crash) is removed.</li>
     * </ul>
     *
     * @throws LedgerException.StorageFailed when the ledger cannot record the result
     */
    public ReconcileReport reconcile(List<HeldDevices> held, Duration releaseGracePeriod) throws LedgerException {
        return reconcile(clock.instant(), held, releaseGracePeriod);
    }

    /**
     * As {@link #reconcile(List, Duration)} with what {@code listing} answers (kubelet's PodResources List), ages
     * counted up to the moment before it was asked: an allocation made while a slow List was in flight is not in
     * its answer, and must not look older than the grace period because of it.
     */
    public ReconcileReport reconcileWith(
            java.util.function.Supplier<List<HeldDevices>> listing, Duration releaseGracePeriod)
            throws LedgerException {
        Instant asked = clock.instant();
        return reconcile(asked, listing.get(), releaseGracePeriod);
    }

    private ReconcileReport reconcile(Instant now, List<HeldDevices> held, Duration releaseGracePeriod)
            throws LedgerException {
        synchronized (lock) {
            Map<MilliGpuId, String> heldBy = new HashMap<>();
            Map<String, HeldDevices> heldByName = new LinkedHashMap<>(); // derived allocation name -> container
            Map<String, List<MilliGpuId>> heldIds = new HashMap<>();
            for (HeldDevices container : held) {
                Set<MilliGpuId> ids = new TreeSet<>();
                for (String raw : container.deviceIds()) {
                    try {
                        MilliGpuId id = MilliGpuId.parse(raw);
                        ids.add(id);
                        heldBy.put(id, container.owner());
                    } catch (IllegalArgumentException e) {
                        log.warn("event=reconcile_bad_id owner=\"{}\" id=\"{}\"", container.owner(), raw);
                    }
                }
                if (ids.isEmpty()) {
                    continue;
                }
                List<MilliGpuId> sorted = List.copyOf(ids);
                String name = allocationId(sorted);
                if (heldByName.putIfAbsent(name, container) != null) {
                    log.warn(
                            "event=reconcile_conflict allocation={} owner=\"{}\" other=\"{}\" detail=\"two "
                                    + "containers hold the same IDs\"",
                            name,
                            container.owner(),
                            heldByName.get(name).owner());
                    continue;
                }
                heldIds.put(name, sorted);
            }
            List<Allocation> released = new ArrayList<>();
            List<String> releaseReasons = new ArrayList<>();
            List<Allocation> learned = new ArrayList<>();
            Map<String, Allocation> served = new LinkedHashMap<>(allocations);
            Map<String, Allocation> missing = new LinkedHashMap<>(onMissingGpus);
            for (Map<String, Allocation> kept : List.of(served, missing)) {
                for (Allocation allocation : List.copyOf(kept.values())) {
                    if (allocation.claim().isDra()) {
                        continue; // PodResources never lists a DRA claim's slots; NodeUnprepareResources releases it
                    }
                    HeldDevices holder = heldByName.get(allocation.id());
                    if (holder != null) {
                        if (!holder.owner().equals(allocation.owner())) {
                            Allocation relabelled = allocation.withOwner(holder.owner());
                            learned.add(relabelled);
                            kept.put(allocation.id(), relabelled);
                        }
                        continue;
                    }
                    String other = allocation.deviceIds().stream()
                            .map(heldBy::get)
                            .filter(o -> o != null)
                            .findFirst()
                            .orElse(null);
                    boolean pastGrace =
                            Duration.between(allocation.createdAt(), now).compareTo(releaseGracePeriod) >= 0;
                    // Made in this run and young: the list may predate its Allocate (kubelet freed the IDs from a
                    // departed pod the list still shows), so only the grace period may release it.
                    boolean beforeThisRun = !allocation.createdAt().isAfter(openedAt);
                    if (other != null && (beforeThisRun || pastGrace)) {
                        released.add(allocation);
                        releaseReasons.add("ids_held_by_other");
                        kept.remove(allocation.id());
                    } else if (other == null && pastGrace) {
                        released.add(allocation);
                        releaseReasons.add("not_in_pod_resources");
                        kept.remove(allocation.id());
                    }
                }
            }
            List<Allocation> adopted = new ArrayList<>();
            // One owner per ID: a listed container whose IDs overlap an allocation kept (or adopted) is not adopted.
            // kubelet lists such overlaps for a finished init container whose devices its app containers reuse
            // (older kubelets list terminated pods too); the allocation kept is the one that holds the IDs now.
            Set<MilliGpuId> owned = new HashSet<>();
            served.values().forEach(allocation -> owned.addAll(allocation.deviceIds()));
            for (Map.Entry<String, HeldDevices> entry : heldByName.entrySet()) {
                String name = entry.getKey();
                if (served.containsKey(name) || missing.containsKey(name)) {
                    continue;
                }
                if (preparing.contains(name)) {
                    continue; // an Allocate of these IDs is writing their files; its commit records them
                }
                if (heldIds.get(name).stream().anyMatch(owned::contains)) {
                    if (reportedUnadoptable.add(name + " " + entry.getValue().owner())) {
                        log.info(
                                "event=reconcile_not_adopted owner=\"{}\" allocation={} reason=\"its IDs overlap "
                                        + "an allocation the ledger keeps (a finished init container's devices reused by "
                                        + "its pod's app containers)\"",
                                entry.getValue().owner(),
                                name);
                    }
                    continue;
                }
                try {
                    List<MilliGpuId> valid = validateShape(
                            heldIds.get(name).stream().map(MilliGpuId::id).toList());
                    Allocation adoptedAllocation =
                            new Allocation(name, valid, now, entry.getValue().owner());
                    adopted.add(adoptedAllocation);
                    served.put(name, adoptedAllocation);
                    owned.addAll(valid);
                } catch (LedgerException e) {
                    if (reportedUnadoptable.add(name + " " + entry.getValue().owner())) {
                        log.warn(
                                "event=reconcile_not_adopted owner=\"{}\" reason=\"{}\"",
                                entry.getValue().owner(),
                                e.getMessage());
                    }
                }
            }
            reportedUnadoptable.removeIf(key -> !heldByName.containsKey(key.substring(0, key.indexOf(' '))));
            List<String> orphans = List.of();
            if (released.isEmpty() && adopted.isEmpty() && learned.isEmpty()) {
                orphans = removeOrphans(now, releaseGracePeriod);
                return new ReconcileReport(List.of(), List.of(), List.of(), orphans);
            }
            for (Allocation allocation : adopted) {
                try {
                    if (!hasOwnFiles(allocation)) {
                        discardDirectoryOf(allocation); // a link or a partial directory is never written through
                    }
                    ensureFiles(allocation);
                } catch (LedgerException.StorageFailed e) {
                    log.error(
                            "event=adopt_files_failed allocation={} owner=\"{}\" error=\"{}\"",
                            allocation.id(),
                            allocation.owner(),
                            e.getMessage());
                }
            }
            allocations.clear();
            owners.clear();
            served.values().forEach(this::record);
            onMissingGpus.clear();
            onMissingGpus.putAll(missing);
            writer.submit(List.copyOf(allocations.values()));
            changed();
            for (int i = 0; i < released.size(); i++) {
                Allocation allocation = released.get(i);
                // a takeover of exactly these IDs is writing fresh files there, and its answer will name them:
                // the directory is the preparer's, recorded by its commit or removed by its close
                boolean takenOver = preparing.contains(allocation.id());
                if (!takenOver) {
                    discarded.discard(directory(allocation));
                }
                log.info(
                        "event=allocation_released reason={} allocation={} owner=\"{}\" gpus={} files={}",
                        releaseReasons.get(i),
                        allocation.id(),
                        allocation.owner(),
                        allocation.milliPerGpu(),
                        takenOver ? "kept_for_takeover" : "removed");
            }
            for (Allocation allocation : adopted) {
                log.info(
                        "event=allocation_adopted allocation={} owner=\"{}\" gpus={}",
                        allocation.id(),
                        allocation.owner(),
                        allocation.milliPerGpu());
            }
            for (Allocation allocation : learned) {
                log.info(
                        "event=allocation_owner allocation={} owner=\"{}\" gpus={}",
                        allocation.id(),
                        allocation.owner(),
                        allocation.milliPerGpu());
            }
            orphans = removeOrphans(now, releaseGracePeriod);
            return new ReconcileReport(List.copyOf(released), List.copyOf(adopted), List.copyOf(learned), orphans);
        }
    }

    /**
     * Removes what the allocations directory holds beyond the ledger's allocations: directories a crash left
     * (created before their checkpoint, kubelet never recorded them) and anything else. Only once the ledger has
     * been open for the grace period, so a container whose record kubelet had not yet shown is adopted first.
     * Every directory this run creates is recorded under the lock, so only a previous run's can be found here.
     * Caller holds the lock.
     */
    @GuardedBy("lock")
    private List<String> removeOrphans(Instant now, Duration releaseGracePeriod) {
        if (Duration.between(openedAt, now).compareTo(releaseGracePeriod) < 0) {
            return List.of();
        }
        List<String> removed = new ArrayList<>();
        try (java.nio.file.DirectoryStream<Path> entries = Files.newDirectoryStream(allocationsDir)) {
            for (Path entry : entries) {
                String name = entry.getFileName().toString();
                // displaced files wait out their grace for an init container; a directory being prepared is an
                // Allocate in progress outside the lock
                if (!allocations.containsKey(name)
                        && !onMissingGpus.containsKey(name)
                        && !displacedWaiting.containsKey(name)
                        && !preparing.contains(name)) {
                    removed.add(name);
                }
            }
        } catch (IOException e) {
            log.warn("event=orphan_scan_failed dir={} error=\"{}\"", allocationsDir, e.toString());
            return List.of();
        }
        for (String name : removed) {
            discarded.discard(allocationsDir.resolve(name));
            log.warn(
                    "event=orphan_directory_removed dir={} detail=\"no allocation accounts for it (left by a "
                            + "crash)\"",
                    allocationsDir.resolve(name));
        }
        return List.copyOf(removed);
    }

    /** Ends a subscription; closing cannot fail. */
    public interface Subscription extends AutoCloseable {
        @Override
        void close();
    }

    /**
     * Runs {@code listener} after every change of the allocations (created, released, adopted, owner learned), on
     * the ledger's notifier thread: never under the ledger's lock, so a listener may read the ledger. Close the
     * returned handle to stop.
     */
    public Subscription onChange(Runnable listener) {
        changeListeners.add(listener);
        return () -> changeListeners.remove(listener);
    }

    private void changed() {
        for (Runnable listener : changeListeners) {
            changeNotifier.execute(() -> {
                try {
                    listener.run();
                } catch (RuntimeException e) {
                    log.warn("event=ledger_listener_failed", e);
                }
            });
        }
    }

    /**
     * Waits until every change so far is in the checkpoint file.
     *
     * @return false when that did not happen within {@code timeout}
     */
    public boolean flush(Duration timeout) throws InterruptedException {
        return writer.flush(timeout);
    }

    /**
     * How long the files of an allocation displaced by an Allocate (its IDs handed to a new container) are kept
     * before they are removed: the release grace period, since the displaced container may be an init container
     * of the same pod that kubelet starts only after admitting the whole pod. Its record goes at once.
     */
    public void keepDisplacedFilesFor(Duration grace) {
        if (grace.isNegative()) {
            throw new IllegalArgumentException("grace " + grace + " is negative");
        }
        this.displacedFilesGrace = grace;
    }

    private void discardDisplacedLater(Allocation released) {
        displacedWaiting.put(released.id(), released);
        if (displacedFilesGrace.isZero()) {
            discardDisplaced(released);
            return;
        }
        try {
            var _ = displacedFiles.schedule(
                    () -> discardDisplaced(released),
                    displacedFilesGrace.toMillis(),
                    java.util.concurrent.TimeUnit.MILLISECONDS);
        } catch (java.util.concurrent.RejectedExecutionException closing) {
            discardDisplaced(released);
        }
    }

    /** Removes a displaced allocation's files, unless the same IDs have been allocated again since. */
    private void discardDisplaced(Allocation released) {
        if (displacedWaiting.remove(released.id(), released)) {
            synchronized (lock) {
                if (allocations.containsKey(released.id()) || !preparing.add(released.id())) {
                    return; // the same IDs again: the directory is the new allocation's now
                }
            }
            try {
                discarded.discard(directory(released));
            } finally {
                synchronized (lock) {
                    preparing.remove(released.id());
                }
            }
            log.info(
                    "event=allocation_files_removed allocation={} owner=\"{}\" reason=displaced",
                    released.id(),
                    released.owner());
        }
    }

    /** Pre-created allocation directories ready now (tests). */
    int sparesReady() {
        return spares.ready();
    }

    /** Writes the pending checkpoint and stops the ledger's background work. */
    @Override
    public void close() {
        changeNotifier.shutdownNow();
        displacedFiles.shutdownNow();
        // nothing records them any more: waiting would leak them across a restart
        List.copyOf(displacedWaiting.values()).forEach(this::discardDisplaced);
        spares.close();
        writer.close();
        discarded.close();
    }

    /** What the allocation's control file says: per-GPU memory limit and compute quota. */
    public AllocationSpec spec(Allocation allocation) {
        List<DeviceQuota> quotas = new ArrayList<>();
        allocation.milliPerGpu().forEach((uuid, milli) -> {
            GpuDevice gpu = gpusByUuid.get(uuid);
            long memory = allocation.claim().memoryBytesPerGpu() > 0
                    ? allocation.claim().memoryBytesPerGpu()
                    : switch (sharing.memoryPolicy()) {
                        case PROPORTIONAL -> MilliGpu.defaultMemory(milli, gpu.memoryBytes());
                        case UNLIMITED -> ShmLayout.MEMORY_UNLIMITED;
                    };
            quotas.add(new DeviceQuota(
                    uuid,
                    gpu.index(),
                    memory,
                    milli,
                    switch (sharing.computeMode()) {
                        case HARD_CAP -> ComputeMode.HARD_CAP;
                        case WORK_CONSERVING -> ComputeMode.WORK_CONSERVING;
                    }));
        });
        quotas.sort((a, b) -> Integer.compare(a.hostIndex(), b.hostIndex()));
        String label = allocation.owner().isEmpty() ? "allocation " + allocation.id() : allocation.owner();
        return new AllocationSpec(label, quotas, sharing.computeEnforced(), sharing.computePeriodUs());
    }

    /**
     * Records whom an allocation made without that knowledge (adopted after a restart) belongs to, once the pod
     * is known; the memory quota it already has is kept.
     *
     * @return false when there is no such allocation or its claim is already known
     */
    public boolean learnClaim(String allocationId, AllocationClaim claim) {
        synchronized (lock) {
            Allocation existing = allocations.get(allocationId);
            if (existing == null || !existing.claim().equals(AllocationClaim.UNKNOWN)) {
                return false;
            }
            record(existing.withClaim(new AllocationClaim(
                    claim.podUid(), claim.namespace(), claim.pod(), claim.container(), claim.tenant(), 0)));
            writer.submit(List.copyOf(allocations.values()));
            changed();
            log.info(
                    "event=allocation_claim allocation={} pod={} tenant={}",
                    allocationId,
                    claim.owner(),
                    claim.tenant());
            return true;
        }
    }

    private List<MilliGpuId> parseKnown(String field, Collection<String> raw) throws LedgerException {
        List<MilliGpuId> ids = new ArrayList<>(raw.size());
        for (String text : raw) {
            MilliGpuId known = text == null ? null : knownIds.get(text);
            if (known != null) {
                ids.add(known);
                continue;
            }
            MilliGpuId id;
            try {
                id = MilliGpuId.parse(text);
            } catch (IllegalArgumentException e) {
                throw new LedgerException.InvalidRequest(field + ": " + e.getMessage());
            }
            if (!gpusByUuid.containsKey(id.uuid())) {
                throw new LedgerException.InvalidRequest(field + ": device ID '" + text + "' names GPU " + id.uuid()
                        + ", which this node does not have; expected one of " + gpusByUuid.keySet());
            }
            ids.add(id);
        }
        return ids;
    }

    /**
     * Checks, without recording anything, that {@link #allocate} would accept these IDs' shape.
     *
     * @throws LedgerException.InvalidRequest as {@link #allocate} would
     */
    public void checkAllocatable(Collection<String> deviceIds) throws LedgerException {
        validateShape(deviceIds);
    }

    /** Known, distinct IDs forming one share of one GPU or whole GPUs; sorted. */
    private List<MilliGpuId> validateShape(Collection<String> raw) throws LedgerException {
        if (raw.isEmpty()) {
            throw new LedgerException.InvalidRequest("no device IDs; expected at least one <gpu-uuid>-m<slot>");
        }
        List<MilliGpuId> ids = parseKnown("devices_ids", raw);
        Set<MilliGpuId> distinct = new HashSet<>();
        for (MilliGpuId id : ids) {
            if (!distinct.add(id)) {
                throw new LedgerException.InvalidRequest("devices_ids: device ID '" + id + "' appears twice");
            }
        }
        Map<String, Integer> perGpu = new LinkedHashMap<>();
        ids.forEach(id -> perGpu.merge(id.uuid(), 1, Integer::sum));
        if (perGpu.size() > 1 && perGpu.values().stream().anyMatch(n -> n != MilliGpu.PER_GPU)) {
            throw new LedgerException.InvalidRequest("devices_ids span GPUs " + perGpu + " (milli per GPU); a share "
                    + "below " + MilliGpu.PER_GPU + " must stay on one GPU and a larger one must take whole "
                    + "GPUs (" + MilliGpu.PER_GPU + " IDs each)");
        }
        if (perGpu.size() > ShmLayout.MAX_DEVICES) {
            throw new LedgerException.InvalidRequest("devices_ids name " + perGpu.size() + " GPUs; at most "
                    + ShmLayout.MAX_DEVICES + " fit one allocation");
        }
        List<MilliGpuId> sorted = new ArrayList<>(ids);
        sorted.sort(null);
        return sorted;
    }

    private void ensureFiles(Allocation allocation) throws LedgerException.StorageFailed {
        if (Files.isRegularFile(directory(allocation).resolve(AllocationFiles.CONTROL))
                && Files.isRegularFile(directory(allocation).resolve(AllocationFiles.USAGE))) {
            return;
        }
        try {
            writeFiles(allocation);
        } catch (IOException | RuntimeException e) {
            throw new LedgerException.StorageFailed(
                    "cannot create the files of allocation " + allocation.id() + " in " + directory(allocation) + ": "
                            + e.getMessage(),
                    e);
        }
    }

    private void writeFiles(Allocation allocation) throws IOException {
        try (AllocationFiles files = AllocationFiles.create(directory(allocation), spec(allocation))) {
            files.control().heartbeat();
        }
    }

    @GuardedBy("lock")
    private void record(Allocation allocation) {
        allocations.put(allocation.id(), allocation);
        for (MilliGpuId device : allocation.deviceIds()) {
            owners.put(device, allocation.id());
        }
    }

    @GuardedBy("lock")
    private Allocation forget(String allocationId) {
        Allocation removed = allocations.remove(allocationId);
        if (removed != null) {
            removed.deviceIds().forEach(device -> owners.remove(device, allocationId));
        }
        return removed;
    }

    /** {@code a-} and the first 16 hex digits of SHA-256 over the sorted IDs: same IDs, same allocation. */
    static String allocationId(List<MilliGpuId> sortedIds) {
        try {
            MessageDigest digest = MessageDigest.getInstance("SHA-256");
            for (MilliGpuId id : sortedIds) {
                digest.update(id.id().getBytes(StandardCharsets.US_ASCII));
                digest.update((byte) '\n');
            }
            return "a-" + HexFormat.of().formatHex(digest.digest(), 0, 8);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
