package io.omai.agent.schedapi;

import io.omai.agent.schedapi.expr.DeviceExpression;
import io.omai.agent.schedapi.expr.DeviceExpressions;
import io.omai.agent.schedapi.expr.ExpressionException;
import io.omai.agent.schedapi.v1.ContainerAssignment;
import io.omai.agent.schedapi.v1.ContainerRequirement;
import io.omai.agent.schedapi.v1.FitRequest;
import io.omai.agent.schedapi.v1.ReleaseRequest;
import io.omai.agent.schedapi.v1.ReserveRequest;
import io.omai.agent.schedapi.v1.WatchNodeStateRequest;
import io.omai.agent.tenancy.ContainerReservation;
import io.omai.agent.tenancy.ReservationRequest;
import io.omai.placement.MilliGpu;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * Turns requests into validated domain values, or refuses them with {@link InvalidRequestException} naming the
 * field, the value and the expectation. Nothing here looks at node state, so a refused request changes nothing.
 */
public final class RequestValidator {
    public static final Duration DEFAULT_LEASE = Duration.ofSeconds(60);
    public static final int MAX_LEASE_SECONDS = 3600;
    static final int MAX_CONTAINERS = 64;
    static final int MAX_VFS_PER_CONTAINER = 64;
    // a node runs at most a few hundred pods; more victims than that is not a preemption plan
    static final int MAX_VICTIMS = 256;
    private static final Pattern RESOURCE_NAME =
            Pattern.compile("[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?");
    // incarnations are UUIDs (36 characters); anything much longer is not one of ours
    private static final int MAX_INCARNATION_LENGTH = 64;

    private static final Pattern DNS_LABEL = Pattern.compile("[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?");
    // namespaces, label values, or "org/team": letters, digits and . _ - : / inside, alphanumeric at both ends
    private static final Pattern TENANT = Pattern.compile("[A-Za-z0-9]([A-Za-z0-9._:/-]{0,251}[A-Za-z0-9])?");
    private static final Pattern POD_UID = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,127}");
    private static final String POD_UID_EXPECTED = "a pod UID: letters, digits, '.', '_' or '-', at most 128";
    private static final Pattern KEY = Pattern.compile("[\\x21-\\x7e]{1,256}");
    private static final Pattern DEVICE_ID = Pattern.compile("[\\x21-\\x7e]{1,128}");

    private final DeviceExpressions expressions;

    public RequestValidator(DeviceExpressions expressions) {
        this.expressions = expressions;
    }

    public FitQuery fitQuery(FitRequest request) {
        String tenant = tenant(request.getTenant());
        requireContainers(request.getContainersCount());
        var names = new HashSet<String>();
        var needs = new ArrayList<ContainerNeed>();
        for (int i = 0; i < request.getContainersCount(); i++) {
            needs.add(containerNeed(request.getContainers(i), "containers[" + i + "]", names));
        }
        Optional<String> podUid = request.getPodUid().isEmpty()
                ? Optional.empty()
                : Optional.of(text(request.getPodUid(), "pod_uid", POD_UID, POD_UID_EXPECTED));
        if (request.getIgnorePodUidsCount() > MAX_VICTIMS) {
            throw new InvalidRequestException(
                    "ignore_pod_uids", request.getIgnorePodUidsCount() + " pods; at most " + MAX_VICTIMS);
        }
        var victims = new HashSet<String>();
        for (int i = 0; i < request.getIgnorePodUidsCount(); i++) {
            victims.add(text(request.getIgnorePodUids(i), "ignore_pod_uids[" + i + "]", POD_UID, POD_UID_EXPECTED));
        }
        return new FitQuery(tenant, needs, podUid, victims);
    }

    private ContainerNeed containerNeed(ContainerRequirement c, String path, Set<String> names) {
        String name = containerName(c.getName(), path + ".name", names);
        int milli = milli(c.getMilli(), path + ".milli");
        long memory = memory(c.getMemoryBytes(), milli, path + ".memory_bytes");
        if (c.getGpus() != 0 && c.getGpus() != MilliGpu.gpuCount(milli)) {
            throw new InvalidRequestException(
                    path + ".gpus",
                    c.getGpus() + " does not match milli " + milli + ", which means " + MilliGpu.gpuCount(milli)
                            + " GPU(s); leave gpus at 0 or make them agree");
        }
        if (c.getVfs() < 0 || c.getVfs() > MAX_VFS_PER_CONTAINER) {
            throw new InvalidRequestException(
                    path + ".vfs", c.getVfs() + " is not between 0 and " + MAX_VFS_PER_CONTAINER);
        }
        Optional<DeviceExpression> selector = Optional.empty();
        if (!c.getExpression().isEmpty()) {
            if (milli == 0) {
                throw new InvalidRequestException(
                        path + ".expression", "selects GPUs but milli is 0 (no GPU asked for)");
            }
            try {
                selector = Optional.of(expressions.compile(c.getExpression()));
            } catch (ExpressionException e) {
                String at = e.line() > 0 ? "line " + e.line() + ", column " + e.column() + ": " : "";
                throw new InvalidRequestException(path + ".expression", at + e.getMessage());
            }
        }
        String vfResource = c.getVfResource().isEmpty()
                ? HcaSnapshot.DEFAULT_VF_RESOURCE
                : text(
                        c.getVfResource(),
                        path + ".vf_resource",
                        RESOURCE_NAME,
                        "an extended resource name such as omai.io/roce-vf (empty: " + HcaSnapshot.DEFAULT_VF_RESOURCE
                                + ")");
        return new ContainerNeed(name, milli, memory, c.getVfs(), selector, vfResource, c.getInit());
    }

    public ReservationRequest reservationRequest(ReserveRequest request) {
        String key = text(
                request.getIdempotencyKey(),
                "idempotency_key",
                KEY,
                "1 to 256 printable ASCII characters without spaces");
        String podUid = text(request.getPodUid(), "pod_uid", POD_UID, POD_UID_EXPECTED);
        String tenant = tenant(request.getTenant());
        requireContainers(request.getContainersCount());
        var names = new HashSet<String>();
        var vfs = new HashSet<String>();
        var containers = new ArrayList<ContainerReservation>();
        for (int i = 0; i < request.getContainersCount(); i++) {
            containers.add(containerReservation(request.getContainers(i), "containers[" + i + "]", names, vfs));
        }
        return new ReservationRequest(key, podUid, tenant, containers, lease(request.getLeaseSeconds()));
    }

    private ContainerReservation containerReservation(
            ContainerAssignment c, String path, Set<String> names, Set<String> podVfs) {
        String name = containerName(c.getName(), path + ".name", names);
        int milli = milli(c.getMilli(), path + ".milli");
        long memory = memory(c.getMemoryBytes(), milli, path + ".memory_bytes");
        int expected = MilliGpu.gpuCount(milli);
        if (c.getGpuUuidsCount() != expected) {
            throw new InvalidRequestException(
                    path + ".gpu_uuids",
                    c.getGpuUuidsCount() + " GPU(s) named but milli " + milli + " needs " + expected);
        }
        var uuids = new HashSet<String>();
        for (int j = 0; j < c.getGpuUuidsCount(); j++) {
            String uuid = text(c.getGpuUuids(j), path + ".gpu_uuids[" + j + "]", DEVICE_ID, "a GPU UUID");
            if (!uuids.add(uuid)) {
                throw new InvalidRequestException(
                        path + ".gpu_uuids[" + j + "]", "'" + uuid + "' is named twice; whole GPUs must be distinct");
            }
        }
        if (c.getVfIdsCount() > MAX_VFS_PER_CONTAINER) {
            throw new InvalidRequestException(
                    path + ".vf_ids", c.getVfIdsCount() + " VFs; at most " + MAX_VFS_PER_CONTAINER);
        }
        for (int j = 0; j < c.getVfIdsCount(); j++) {
            String vf = text(c.getVfIds(j), path + ".vf_ids[" + j + "]", DEVICE_ID, "a VF id (PCI address)");
            if (!podVfs.add(vf)) {
                throw new InvalidRequestException(
                        path + ".vf_ids[" + j + "]", "'" + vf + "' is named twice in this pod");
            }
        }
        return new ContainerReservation(name, c.getGpuUuidsList(), milli, memory, c.getVfIdsList());
    }

    public void checkWatch(WatchNodeStateRequest request) {
        if (request.getAfterGeneration() < 0) {
            throw new InvalidRequestException(
                    "after_generation",
                    request.getAfterGeneration()
                            + " is negative; pass 0 for none or the generation of the last state received");
        }
        if (request.getIncarnation().length() > MAX_INCARNATION_LENGTH) {
            throw new InvalidRequestException(
                    "incarnation",
                    "is " + request.getIncarnation().length()
                            + " characters long; pass back the incarnation of a state received (at most "
                            + MAX_INCARNATION_LENGTH + ")");
        }
    }

    /** The reservation a release names: by pod UID or by idempotency key. */
    public sealed interface ReleaseTarget {
        record ByPod(String podUid) implements ReleaseTarget {}

        record ByKey(String idempotencyKey) implements ReleaseTarget {}
    }

    public ReleaseTarget releaseTarget(ReleaseRequest request) {
        return switch (request.getSelectorCase()) {
            case POD_UID -> new ReleaseTarget.ByPod(text(request.getPodUid(), "pod_uid", POD_UID, POD_UID_EXPECTED));
            case IDEMPOTENCY_KEY ->
                new ReleaseTarget.ByKey(text(
                        request.getIdempotencyKey(),
                        "idempotency_key",
                        KEY,
                        "1 to 256 printable ASCII characters without spaces"));
            case SELECTOR_NOT_SET ->
                throw new InvalidRequestException("selector", "neither pod_uid nor idempotency_key is set; set one");
        };
    }

    private static String tenant(String tenant) {
        return text(
                tenant,
                "tenant",
                TENANT,
                "a tenant name (e.g. a namespace): letters, digits, '.', '_', ':', "
                        + "'/' or '-', alphanumeric at both ends, at most 253");
    }

    private static void requireContainers(int count) {
        if (count == 0) {
            throw new InvalidRequestException("containers", "is empty; a pod needs at least one container");
        }
        if (count > MAX_CONTAINERS) {
            throw new InvalidRequestException("containers", count + " containers; at most " + MAX_CONTAINERS);
        }
    }

    private static String containerName(String name, String field, Set<String> seen) {
        text(name, field, DNS_LABEL, "a DNS label (lower-case letters, digits and '-', at most 63)");
        if (!seen.add(name)) {
            throw new InvalidRequestException(field, "'" + name + "' is used by two containers");
        }
        return name;
    }

    private static int milli(int milli, String field) {
        if (!MilliGpu.isValid(milli)) {
            throw new InvalidRequestException(field, MilliGpu.describeInvalid(milli));
        }
        return milli;
    }

    private static long memory(long memory, int milli, String field) {
        if (memory < 0) {
            throw new InvalidRequestException(field, memory + " is negative");
        }
        if (memory > 0 && milli == 0) {
            throw new InvalidRequestException(field, memory + " bytes of GPU memory asked for but milli is 0");
        }
        return memory;
    }

    private static Duration lease(int seconds) {
        if (seconds == 0) {
            return DEFAULT_LEASE;
        }
        if (seconds < 0 || seconds > MAX_LEASE_SECONDS) {
            throw new InvalidRequestException(
                    "lease_seconds",
                    seconds + " is not between 1 and " + MAX_LEASE_SECONDS + " (0 means " + DEFAULT_LEASE.toSeconds()
                            + ")");
        }
        return Duration.ofSeconds(seconds);
    }

    private static String text(String value, String field, Pattern format, String expected) {
        if (value.isEmpty()) {
            throw new InvalidRequestException(field, "is missing; expected " + expected);
        }
        if (!format.matcher(value).matches()) {
            throw new InvalidRequestException(field, "'" + abbreviate(value) + "' is not " + expected);
        }
        return value;
    }

    private static String abbreviate(String value) {
        return value.length() <= 80 ? value : value.substring(0, 77) + "...";
    }
}
