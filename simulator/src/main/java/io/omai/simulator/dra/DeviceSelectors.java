package io.omai.simulator.dra;

import dev.cel.bundle.Cel;
import dev.cel.bundle.CelFactory;
import dev.cel.common.CelAbstractSyntaxTree;
import dev.cel.common.CelFunctionDecl;
import dev.cel.common.CelOptions;
import dev.cel.common.CelOverloadDecl;
import dev.cel.common.CelValidationException;
import dev.cel.common.types.SimpleType;
import dev.cel.parser.CelStandardMacro;
import dev.cel.runtime.CelEvaluationException;
import dev.cel.runtime.CelFunctionBinding;
import dev.cel.runtime.CelRuntime;
import io.fabric8.kubernetes.api.model.Quantity;
import io.fabric8.kubernetes.api.model.resource.v1.Device;
import io.fabric8.kubernetes.api.model.resource.v1.DeviceAttribute;
import io.fabric8.kubernetes.api.model.resource.v1.DeviceCapacity;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * DRA's CEL device selectors, as the scheduler evaluates them: {@code device.driver}, {@code
 * device.attributes["<domain>"].<name>} and {@code device.capacity["<domain>"].<name>}, where an attribute or
 * capacity name without a domain belongs to the driver's. One simplification, said here so no test relies on it
 * by accident: capacities are integers (bytes, milli) rather than CEL quantities; {@code quantity("20Gi")} gives
 * the same integer and {@code a.compareTo(b)} works on them, so the selector text of a real cluster still reads
 * and compares the same.
 */
final class DeviceSelectors {
    private static final Cel CEL = CelFactory.legacyCelBuilder()
            .setOptions(CelOptions.current().build())
            .setStandardMacros(CelStandardMacro.STANDARD_MACROS)
            .addVar("device", SimpleType.DYN)
            .addFunctionDeclarations(
                    CelFunctionDecl.newFunctionDeclaration(
                            "quantity",
                            CelOverloadDecl.newGlobalOverload(
                                    "quantity_string", "a Kubernetes quantity", SimpleType.INT, SimpleType.STRING)),
                    CelFunctionDecl.newFunctionDeclaration(
                            "compareTo",
                            CelOverloadDecl.newMemberOverload(
                                    "int_compareTo_int", "-1, 0 or 1", SimpleType.INT, SimpleType.INT, SimpleType.INT)))
            .addFunctionBindings(
                    CelFunctionBinding.from("quantity_string", String.class, DeviceSelectors::quantity),
                    CelFunctionBinding.from(
                            "int_compareTo_int", Long.class, Long.class, (a, b) -> (long) Long.compare(a, b)))
            .setResultType(SimpleType.BOOL)
            .build();

    /** Compiled selectors by text: the allocator evaluates the same few against every device. */
    private static final Map<String, CelRuntime.Program> PROGRAMS = new java.util.concurrent.ConcurrentHashMap<>();

    private DeviceSelectors() {}

    private static Object quantity(String text) throws CelEvaluationException {
        try {
            return Quantity.getAmountInBytes(new Quantity(text)).longValueExact();
        } catch (RuntimeException e) {
            throw new CelEvaluationException("quantity(\"" + text + "\"): " + e.getMessage());
        }
    }

    /**
     * Whether {@code device} of {@code driver} satisfies {@code expression}; a selector that does not compile, or
     * fails on this device (e.g. an attribute it lacks), is an error naming the expression, as the scheduler
     * reports it rather than treating the device as a match.
     */
    static boolean matches(String expression, String driver, Device device) {
        CelRuntime.Program program = PROGRAMS.computeIfAbsent(expression, DeviceSelectors::compile);
        try {
            return (Boolean) program.eval(Map.of("device", view(driver, device)));
        } catch (CelEvaluationException e) {
            throw new IllegalArgumentException(
                    "CEL selector '" + expression + "' failed on device " + device.getName() + ": " + e.getMessage());
        }
    }

    private static CelRuntime.Program compile(String expression) {
        try {
            CelAbstractSyntaxTree ast = CEL.compile(expression).getAst();
            return CEL.createProgram(ast);
        } catch (CelValidationException | CelEvaluationException e) {
            throw new IllegalArgumentException("CEL selector '" + expression + "' does not compile: " + e.getMessage());
        }
    }

    private static Map<String, Object> view(String driver, Device device) {
        Map<String, Map<String, Object>> attributes = new HashMap<>();
        if (device.getAttributes() != null) {
            device.getAttributes()
                    .forEach((name, value) -> domainOf(attributes, driver, name).put(localName(name), valueOf(value)));
        }
        Map<String, Map<String, Object>> capacity = new HashMap<>();
        if (device.getCapacity() != null) {
            for (Map.Entry<String, DeviceCapacity> entry : device.getCapacity().entrySet()) {
                domainOf(capacity, driver, entry.getKey())
                        .put(
                                localName(entry.getKey()),
                                Quantity.getAmountInBytes(entry.getValue().getValue())
                                        .longValueExact());
            }
        }
        Map<String, Object> view = new LinkedHashMap<>();
        view.put("driver", driver);
        view.put("attributes", attributes);
        view.put("capacity", capacity);
        view.put("allowMultipleAllocations", Boolean.TRUE.equals(device.getAllowMultipleAllocations()));
        return view;
    }

    private static Map<String, Object> domainOf(Map<String, Map<String, Object>> byDomain, String driver, String name) {
        int slash = name.indexOf('/');
        return byDomain.computeIfAbsent(slash < 0 ? driver : name.substring(0, slash), d -> new HashMap<>());
    }

    static String localName(String name) {
        return name.substring(name.indexOf('/') + 1);
    }

    private static Object valueOf(DeviceAttribute attribute) {
        if (attribute.getString() != null) {
            return attribute.getString();
        }
        if (attribute.getInt() != null) {
            return attribute.getInt();
        }
        if (attribute.getBool() != null) {
            return attribute.getBool();
        }
        if (attribute.getVersion() != null) {
            return attribute.getVersion();
        }
        throw new IllegalArgumentException("attribute " + attribute + " has no value");
    }

    /** The attribute's value as a comparable object (for matchAttribute / distinctAttribute), or null. */
    static Object attribute(Device device, String driver, String qualifiedName) {
        if (device.getAttributes() == null) {
            return null;
        }
        String domain = qualifiedName.contains("/") ? qualifiedName.substring(0, qualifiedName.indexOf('/')) : driver;
        String local = localName(qualifiedName);
        for (Map.Entry<String, DeviceAttribute> entry : device.getAttributes().entrySet()) {
            String entryDomain = entry.getKey().contains("/")
                    ? entry.getKey().substring(0, entry.getKey().indexOf('/'))
                    : driver;
            if (entryDomain.equals(domain) && localName(entry.getKey()).equals(local)) {
                return valueOf(entry.getValue());
            }
        }
        return null;
    }
}
