package io.omai.simulator.dra;

import io.fabric8.kubernetes.api.model.NodeSelectorBuilder;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.Quantity;
import io.fabric8.kubernetes.api.model.resource.v1.AllocationResultBuilder;
import io.fabric8.kubernetes.api.model.resource.v1.CapacityRequestPolicy;
import io.fabric8.kubernetes.api.model.resource.v1.Device;
import io.fabric8.kubernetes.api.model.resource.v1.DeviceCapacity;
import io.fabric8.kubernetes.api.model.resource.v1.DeviceClass;
import io.fabric8.kubernetes.api.model.resource.v1.DeviceConstraint;
import io.fabric8.kubernetes.api.model.resource.v1.DeviceRequest;
import io.fabric8.kubernetes.api.model.resource.v1.DeviceRequestAllocationResult;
import io.fabric8.kubernetes.api.model.resource.v1.DeviceRequestAllocationResultBuilder;
import io.fabric8.kubernetes.api.model.resource.v1.DeviceSelector;
import io.fabric8.kubernetes.api.model.resource.v1.DeviceTaint;
import io.fabric8.kubernetes.api.model.resource.v1.DeviceToleration;
import io.fabric8.kubernetes.api.model.resource.v1.ExactDeviceRequest;
import io.fabric8.kubernetes.api.model.resource.v1.ResourceClaim;
import io.fabric8.kubernetes.api.model.resource.v1.ResourceClaimConsumerReferenceBuilder;
import io.fabric8.kubernetes.api.model.resource.v1.ResourceClaimStatusBuilder;
import io.fabric8.kubernetes.api.model.resource.v1.ResourceSlice;
import io.fabric8.kubernetes.client.KubernetesClient;
import java.math.BigDecimal;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.UUID;

/**
 * kube-scheduler's DRA allocator for tests, against the API server the agent talks to: reads the node's
 * ResourceSlices (the newest generation of each pool), the DeviceClasses and every allocated ResourceClaim,
 * picks devices for a claim and writes its {@code status.allocation} (results with driver, pool, device, request;
 * {@code consumedCapacity} and {@code shareID} on devices that allow multiple allocations; a node selector for the
 * node) and {@code status.reservedFor} (the pod), as the scheduler does before binding the pod.
 *
 * <p>What it follows from the scheduler: CEL selectors of the class and the request ({@link DeviceSelectors});
 * taints with effect NoSchedule/NoExecute keep a device out unless the request tolerates them; a device without
 * {@code allowMultipleAllocations} is given to one claim at a time; consumable capacity (KEP-5075): a request's
 * capacity (or the policy's default, or the whole capacity) rounded up to the policy's valid range or values must
 * fit what other claims consumed; {@code matchAttribute} and {@code distinctAttribute} constraints. What it leaves
 * out: {@code firstAvailable}, admin access, partitionable devices; a claim using them is refused, never
 * half-handled. Tests that need an exact result write it with {@link #allocateExactly}.
 */
public final class ClaimAllocator {
    private final KubernetesClient kube;
    private final String nodeName;

    public ClaimAllocator(KubernetesClient kube, String nodeName) {
        this.kube = kube;
        this.nodeName = nodeName;
    }

    /** A claim the allocator cannot satisfy on this node, with the reason per request. */
    public static final class UnsatisfiableClaimException extends RuntimeException {
        private static final long serialVersionUID = 1L;

        UnsatisfiableClaimException(String message) {
            super(message);
        }
    }

    private record Candidate(String driver, String pool, Device device) {
        String key() {
            return driver + "/" + pool + "/" + device.getName();
        }
    }

    /** What other claims hold: exclusive devices, and capacity consumed from shared ones. */
    private record InUse(Set<String> exclusive, Map<String, Map<String, BigDecimal>> consumed) {}

    /** Allocates {@code namespace/name} for {@code pod} on this node and writes the result; returns the claim. */
    public ResourceClaim allocate(String namespace, String name, Pod pod) {
        ResourceClaim claim = claim(namespace, name);
        if (claim.getStatus() != null && claim.getStatus().getAllocation() != null) {
            throw new IllegalStateException("claim " + namespace + "/" + name + " is already allocated");
        }
        List<Candidate> devices = nodeDevices();
        InUse inUse = inUse();
        List<DeviceRequest> requests = claim.getSpec().getDevices().getRequests();
        List<DeviceConstraint> constraints = claim.getSpec().getDevices().getConstraints() == null
                ? List.of()
                : claim.getSpec().getDevices().getConstraints();
        Map<String, List<Candidate>> candidates = new LinkedHashMap<>();
        Map<String, Long> counts = new LinkedHashMap<>();
        List<String> reasons = new ArrayList<>();
        for (DeviceRequest request : requests) {
            ExactDeviceRequest exactly = request.getExactly();
            if (exactly == null) {
                throw new IllegalArgumentException("request '" + request.getName()
                        + "' has no 'exactly' (firstAvailable is not supported by this allocator)");
            }
            if (Boolean.TRUE.equals(exactly.getAdminAccess())) {
                throw new IllegalArgumentException(
                        "request '" + request.getName() + "' asks for admin access (not supported here)");
            }
            DeviceClass deviceClass = kube.resources(DeviceClass.class)
                    .withName(exactly.getDeviceClassName())
                    .get();
            if (deviceClass == null) {
                throw new UnsatisfiableClaimException("request '" + request.getName() + "': DeviceClass '"
                        + exactly.getDeviceClassName() + "' does not exist");
            }
            List<Candidate> fit = new ArrayList<>();
            for (Candidate candidate : devices) {
                String why = unfit(candidate, deviceClass, exactly, inUse);
                if (why == null) {
                    fit.add(candidate);
                } else {
                    reasons.add(request.getName() + ": " + candidate.key() + " " + why);
                }
            }
            candidates.put(request.getName(), fit);
            long count = "All".equals(exactly.getAllocationMode())
                    ? fit.size()
                    : exactly.getCount() == null ? 1 : exactly.getCount();
            if (count < 1) {
                throw new UnsatisfiableClaimException(
                        "request '" + request.getName() + "' selects no device; " + reasons);
            }
            counts.put(request.getName(), count);
        }
        Map<String, List<Candidate>> chosen = new LinkedHashMap<>();
        if (!search(new ArrayList<>(counts.keySet()), 0, candidates, counts, constraints, chosen, new HashSet<>())) {
            throw new UnsatisfiableClaimException("cannot allocate claim " + namespace + "/" + name + " on node "
                    + nodeName + ": requests " + counts + " with constraints " + describe(constraints)
                    + "; devices left out: " + reasons);
        }
        List<DeviceRequestAllocationResult> results = new ArrayList<>();
        for (DeviceRequest request : requests) {
            ExactDeviceRequest exactly = request.getExactly();
            for (Candidate candidate : chosen.get(request.getName())) {
                DeviceRequestAllocationResultBuilder result = new DeviceRequestAllocationResultBuilder()
                        .withDriver(candidate.driver())
                        .withPool(candidate.pool())
                        .withDevice(candidate.device().getName())
                        .withRequest(request.getName());
                if (exactly.getTolerations() != null
                        && !exactly.getTolerations().isEmpty()) {
                    result.withTolerations(exactly.getTolerations());
                }
                if (shared(candidate.device())) {
                    Map<String, Quantity> consumed = new LinkedHashMap<>();
                    consumption(candidate, exactly)
                            .forEach(
                                    (capacity, amount) -> consumed.put(capacity, new Quantity(amount.toPlainString())));
                    result.withConsumedCapacity(consumed)
                            .withShareID(UUID.randomUUID().toString());
                }
                results.add(result.build());
            }
        }
        return allocateExactly(namespace, name, pod, results);
    }

    /** Writes {@code results} as the claim's allocation on this node, reserved for {@code pod}, as given. */
    public ResourceClaim allocateExactly(
            String namespace, String name, Pod pod, List<DeviceRequestAllocationResult> results) {
        ResourceClaim claim = claim(namespace, name);
        claim.setStatus(new ResourceClaimStatusBuilder()
                .withAllocation(new AllocationResultBuilder()
                        .withNewDevices()
                        .withResults(results)
                        .endDevices()
                        .withNodeSelector(new NodeSelectorBuilder()
                                .addNewNodeSelectorTerm()
                                .addNewMatchField()
                                .withKey("metadata.name")
                                .withOperator("In")
                                .withValues(nodeName)
                                .endMatchField()
                                .endNodeSelectorTerm()
                                .build())
                        .withAllocationTimestamp(Instant.now().toString())
                        .build())
                .withReservedFor(new ResourceClaimConsumerReferenceBuilder()
                        .withResource("pods")
                        .withName(pod.getMetadata().getName())
                        .withUid(pod.getMetadata().getUid())
                        .build())
                .build());
        return kube.resources(ResourceClaim.class)
                .inNamespace(namespace)
                .resource(claim)
                .updateStatus();
    }

    /** Clears the claim's allocation and reservations, as the claim controller does once its pods are gone. */
    public ResourceClaim deallocate(String namespace, String name) {
        ResourceClaim claim = claim(namespace, name);
        claim.setStatus(new ResourceClaimStatusBuilder().build());
        return kube.resources(ResourceClaim.class)
                .inNamespace(namespace)
                .resource(claim)
                .updateStatus();
    }

    private ResourceClaim claim(String namespace, String name) {
        ResourceClaim claim = kube.resources(ResourceClaim.class)
                .inNamespace(namespace)
                .withName(name)
                .get();
        if (claim == null) {
            throw new IllegalArgumentException("ResourceClaim " + namespace + "/" + name + " does not exist");
        }
        return claim;
    }

    /** Devices of this node's slices, newest pool generation only (older slices are being replaced). */
    private List<Candidate> nodeDevices() {
        List<ResourceSlice> slices = kube.resources(ResourceSlice.class).list().getItems().stream()
                .filter(slice -> nodeName.equals(slice.getSpec().getNodeName()))
                .toList();
        Map<String, Long> newest = new HashMap<>();
        for (ResourceSlice slice : slices) {
            newest.merge(
                    slice.getSpec().getDriver() + "/"
                            + slice.getSpec().getPool().getName(),
                    slice.getSpec().getPool().getGeneration(),
                    Math::max);
        }
        List<Candidate> devices = new ArrayList<>();
        for (ResourceSlice slice : slices) {
            String driver = slice.getSpec().getDriver();
            String pool = slice.getSpec().getPool().getName();
            if (!Objects.equals(slice.getSpec().getPool().getGeneration(), newest.get(driver + "/" + pool))
                    || slice.getSpec().getDevices() == null) {
                continue;
            }
            for (Device device : slice.getSpec().getDevices()) {
                devices.add(new Candidate(driver, pool, device));
            }
        }
        return devices;
    }

    private InUse inUse() {
        Set<String> exclusive = new HashSet<>();
        Map<String, Map<String, BigDecimal>> consumed = new HashMap<>();
        for (ResourceClaim claim :
                kube.resources(ResourceClaim.class).inAnyNamespace().list().getItems()) {
            if (claim.getStatus() == null
                    || claim.getStatus().getAllocation() == null
                    || claim.getStatus().getAllocation().getDevices() == null) {
                continue;
            }
            for (DeviceRequestAllocationResult result :
                    claim.getStatus().getAllocation().getDevices().getResults()) {
                String key = result.getDriver() + "/" + result.getPool() + "/" + result.getDevice();
                if (result.getShareID() == null) {
                    exclusive.add(key);
                } else if (result.getConsumedCapacity() != null) {
                    result.getConsumedCapacity()
                            .forEach((capacity, amount) -> consumed.computeIfAbsent(key, k -> new HashMap<>())
                                    .merge(DeviceSelectors.localName(capacity), amount(amount), BigDecimal::add));
                }
            }
        }
        return new InUse(exclusive, consumed);
    }

    /** Why {@code candidate} cannot serve {@code request} now, or null if it can. */
    private static String unfit(Candidate candidate, DeviceClass deviceClass, ExactDeviceRequest request, InUse inUse) {
        List<DeviceSelector> selectors = new ArrayList<>();
        if (deviceClass.getSpec().getSelectors() != null) {
            selectors.addAll(deviceClass.getSpec().getSelectors());
        }
        if (request.getSelectors() != null) {
            selectors.addAll(request.getSelectors());
        }
        for (DeviceSelector selector : selectors) {
            if (!DeviceSelectors.matches(selector.getCel().getExpression(), candidate.driver(), candidate.device())) {
                return "does not match '" + selector.getCel().getExpression() + "'";
            }
        }
        if (candidate.device().getTaints() != null) {
            for (DeviceTaint taint : candidate.device().getTaints()) {
                if (!"None".equals(taint.getEffect()) && !tolerated(taint, request.getTolerations())) {
                    return "has taint " + taint.getKey() + "=" + taint.getValue() + ":" + taint.getEffect()
                            + " the request does not tolerate";
                }
            }
        }
        if (inUse.exclusive().contains(candidate.key())) {
            return "is allocated to another claim";
        }
        if (!shared(candidate.device())) {
            if (inUse.consumed().containsKey(candidate.key())) {
                return "is shared by other claims";
            }
            if (request.getCapacity() != null
                    && request.getCapacity().getRequests() != null
                    && !request.getCapacity().getRequests().isEmpty()) {
                return "does not allow multiple allocations, so capacity cannot be requested from it";
            }
            return null;
        }
        Map<String, BigDecimal> consumption;
        try {
            consumption = consumption(candidate, request);
        } catch (IllegalArgumentException e) {
            return e.getMessage();
        }
        Map<String, BigDecimal> consumed = inUse.consumed().getOrDefault(candidate.key(), Map.of());
        for (Map.Entry<String, BigDecimal> entry : consumption.entrySet()) {
            BigDecimal total =
                    amount(capacityOf(candidate.device(), entry.getKey()).getValue());
            BigDecimal used = consumed.getOrDefault(entry.getKey(), BigDecimal.ZERO);
            if (used.add(entry.getValue()).compareTo(total) > 0) {
                return "has " + total.subtract(used).toPlainString() + " " + entry.getKey() + " left, "
                        + entry.getValue().toPlainString() + " asked";
            }
        }
        return null;
    }

    private static boolean shared(Device device) {
        return Boolean.TRUE.equals(device.getAllowMultipleAllocations());
    }

    /**
     * What a request consumes of each capacity of a shared device: the request's amount (else the policy's
     * default, else all of it), rounded up to the policy.
     */
    private static Map<String, BigDecimal> consumption(Candidate candidate, ExactDeviceRequest request) {
        Map<String, Quantity> asked =
                request.getCapacity() == null || request.getCapacity().getRequests() == null
                        ? Map.of()
                        : request.getCapacity().getRequests();
        Map<String, BigDecimal> consumption = new LinkedHashMap<>();
        for (String name : asked.keySet()) {
            if (capacityOf(candidate.device(), DeviceSelectors.localName(name)) == null) {
                throw new IllegalArgumentException("has no capacity '" + name + "'");
            }
        }
        Map<String, DeviceCapacity> capacities = candidate.device().getCapacity() == null
                ? Map.of()
                : candidate.device().getCapacity();
        for (Map.Entry<String, DeviceCapacity> entry : capacities.entrySet()) {
            String name = DeviceSelectors.localName(entry.getKey());
            Quantity requested = asked.get(name);
            if (requested == null) {
                requested = asked.get(candidate.driver() + "/" + name);
            }
            CapacityRequestPolicy policy = entry.getValue().getRequestPolicy();
            BigDecimal amount;
            if (requested != null) {
                amount = amount(requested);
            } else if (policy != null && policy.getDefault() != null) {
                amount = amount(policy.getDefault());
            } else {
                amount = amount(entry.getValue().getValue());
            }
            consumption.put(name, rounded(name, amount, policy));
        }
        return consumption;
    }

    private static BigDecimal rounded(String name, BigDecimal amount, CapacityRequestPolicy policy) {
        if (policy == null) {
            return amount;
        }
        if (policy.getValidValues() != null && !policy.getValidValues().isEmpty()) {
            return policy.getValidValues().stream()
                    .map(ClaimAllocator::amount)
                    .filter(value -> value.compareTo(amount) >= 0)
                    .min(BigDecimal::compareTo)
                    .orElseThrow(() -> new IllegalArgumentException(
                            "allows no " + name + " value as large as " + amount.toPlainString()));
        }
        if (policy.getValidRange() != null) {
            BigDecimal min = amount(policy.getValidRange().getMin());
            BigDecimal value = amount.max(min);
            if (policy.getValidRange().getStep() != null) {
                BigDecimal step = amount(policy.getValidRange().getStep());
                BigDecimal[] steps = value.subtract(min).divideAndRemainder(step);
                if (steps[1].signum() != 0) {
                    value = min.add(steps[0].add(BigDecimal.ONE).multiply(step));
                }
            }
            if (policy.getValidRange().getMax() != null
                    && value.compareTo(amount(policy.getValidRange().getMax())) > 0) {
                throw new IllegalArgumentException("allows at most "
                        + policy.getValidRange().getMax() + " " + name + ", " + value.toPlainString() + " asked");
            }
            return value;
        }
        return amount;
    }

    private static DeviceCapacity capacityOf(Device device, String localName) {
        if (device.getCapacity() == null) {
            return null;
        }
        for (Map.Entry<String, DeviceCapacity> entry : device.getCapacity().entrySet()) {
            if (DeviceSelectors.localName(entry.getKey()).equals(localName)) {
                return entry.getValue();
            }
        }
        return null;
    }

    private static BigDecimal amount(Quantity quantity) {
        return Quantity.getAmountInBytes(quantity);
    }

    private static boolean tolerated(DeviceTaint taint, List<DeviceToleration> tolerations) {
        if (tolerations == null) {
            return false;
        }
        for (DeviceToleration toleration : tolerations) {
            boolean effect = toleration.getEffect() == null
                    || toleration.getEffect().isEmpty()
                    || toleration.getEffect().equals(taint.getEffect());
            boolean key = toleration.getKey() == null
                    || toleration.getKey().isEmpty()
                    || toleration.getKey().equals(taint.getKey());
            boolean value = "Exists".equals(toleration.getOperator())
                    || Objects.equals(
                            toleration.getValue() == null ? "" : toleration.getValue(),
                            taint.getValue() == null ? "" : taint.getValue());
            if (effect && key && value) {
                return true;
            }
        }
        return false;
    }

    /** Depth-first over requests: each gets its count of devices no other request took, constraints holding. */
    private static boolean search(
            List<String> requests,
            int index,
            Map<String, List<Candidate>> candidates,
            Map<String, Long> counts,
            List<DeviceConstraint> constraints,
            Map<String, List<Candidate>> chosen,
            Set<String> taken) {
        if (index == requests.size()) {
            return true;
        }
        String request = requests.get(index);
        return pick(request, 0, new ArrayList<>(), requests, index, candidates, counts, constraints, chosen, taken);
    }

    private static boolean pick(
            String request,
            int from,
            List<Candidate> picked,
            List<String> requests,
            int index,
            Map<String, List<Candidate>> candidates,
            Map<String, Long> counts,
            List<DeviceConstraint> constraints,
            Map<String, List<Candidate>> chosen,
            Set<String> taken) {
        if (picked.size() == counts.get(request)) {
            chosen.put(request, List.copyOf(picked));
            if (satisfied(constraints, chosen)
                    && search(requests, index + 1, candidates, counts, constraints, chosen, taken)) {
                return true;
            }
            chosen.remove(request);
            return false;
        }
        List<Candidate> options = candidates.get(request);
        for (int i = from; i < options.size(); i++) {
            Candidate candidate = options.get(i);
            if (!taken.add(candidate.key())) {
                continue;
            }
            picked.add(candidate);
            chosen.put(request, List.copyOf(picked));
            if (satisfied(constraints, chosen)
                    && pick(request, i + 1, picked, requests, index, candidates, counts, constraints, chosen, taken)) {
                return true;
            }
            picked.removeLast();
            chosen.remove(request);
            taken.remove(candidate.key());
        }
        return false;
    }

    /** Whether what is chosen so far keeps every constraint (partial choices included). */
    private static boolean satisfied(List<DeviceConstraint> constraints, Map<String, List<Candidate>> chosen) {
        for (DeviceConstraint constraint : constraints) {
            List<Candidate> devices = new ArrayList<>();
            chosen.forEach((request, picked) -> {
                if (constraint.getRequests() == null
                        || constraint.getRequests().isEmpty()
                        || constraint.getRequests().contains(request)) {
                    devices.addAll(picked);
                }
            });
            if (constraint.getMatchAttribute() != null) {
                Object first = null;
                for (Candidate device : devices) {
                    Object value =
                            DeviceSelectors.attribute(device.device(), device.driver(), constraint.getMatchAttribute());
                    if (value == null || (first != null && !first.equals(value))) {
                        return false;
                    }
                    first = value;
                }
            }
            if (constraint.getDistinctAttribute() != null) {
                Set<Object> seen = new HashSet<>();
                for (Candidate device : devices) {
                    Object value = DeviceSelectors.attribute(
                            device.device(), device.driver(), constraint.getDistinctAttribute());
                    if (value == null || !seen.add(value)) {
                        return false;
                    }
                }
            }
        }
        return true;
    }

    private static String describe(List<DeviceConstraint> constraints) {
        List<String> text = new ArrayList<>();
        for (DeviceConstraint constraint : constraints) {
            text.add((constraint.getMatchAttribute() != null
                            ? "matchAttribute " + constraint.getMatchAttribute()
                            : "distinctAttribute " + constraint.getDistinctAttribute())
                    + " over " + (constraint.getRequests() == null ? "all requests" : constraint.getRequests()));
        }
        return text.toString();
    }
}
