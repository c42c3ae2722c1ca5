package io.omai.agent.schedapi.expr;

import com.google.errorprone.annotations.concurrent.GuardedBy;
import dev.cel.bundle.Cel;
import dev.cel.bundle.CelFactory;
import dev.cel.common.CelAbstractSyntaxTree;
import dev.cel.common.CelFunctionDecl;
import dev.cel.common.CelIssue;
import dev.cel.common.CelOptions;
import dev.cel.common.CelOverloadDecl;
import dev.cel.common.CelSourceLocation;
import dev.cel.common.CelValidationException;
import dev.cel.common.CelValidationResult;
import dev.cel.common.ast.CelConstant;
import dev.cel.common.ast.CelExpr;
import dev.cel.common.navigation.CelNavigableExpr;
import dev.cel.common.types.SimpleType;
import dev.cel.common.types.StructTypeReference;
import dev.cel.parser.CelStandardMacro;
import dev.cel.runtime.CelEvaluationException;
import dev.cel.runtime.CelFunctionBinding;
import io.omai.agent.schedapi.v1.Device;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;

/**
 * Compiles resource expressions: CEL over one GPU, bound to the variable {@code device} of type
 * {@code omai.scheduler.v1.Device}, with the standard macros ({@code exists}, {@code all}, ...) and
 * {@code quantity(string) -> int} (bytes). Checked at compile time: unknown fields, wrong types and a result
 * other than bool are refused with CEL's message and position. Compiled programs are cached by text (bounded,
 * least recently used evicted), because schedulers send the same few expressions for every pod.
 */
public final class DeviceExpressions {
    public static final String VARIABLE = "device";
    /** Long enough for any sensible selector; bounds parse time and cache memory. */
    public static final int MAX_LENGTH = 2048;

    private static final String QUANTITY_OVERLOAD = "omai_quantity_string";
    // a selector over one device has no business iterating more than a few thousand times
    private static final int MAX_COMPREHENSION_ITERATIONS = 10_000;

    private final Cel cel;
    private final int cacheCapacity;
    // access-ordered: get() moves an entry to the end, so the eldest is the least recently used
    @GuardedBy("cache")
    private final LinkedHashMap<String, DeviceExpression> cache;

    public DeviceExpressions(int cacheCapacity) {
        if (cacheCapacity < 1) {
            throw new IllegalArgumentException("expression cache capacity " + cacheCapacity + " is below 1");
        }
        this.cacheCapacity = cacheCapacity;
        this.cache = new LinkedHashMap<>(16, 0.75f, true) {
            @Override
            protected boolean removeEldestEntry(Map.Entry<String, DeviceExpression> eldest) {
                return size() > DeviceExpressions.this.cacheCapacity;
            }
        };
        this.cel = CelFactory.legacyCelBuilder()
                .setOptions(CelOptions.current()
                        .maxExpressionCodePointSize(MAX_LENGTH)
                        .comprehensionMaxIterations(MAX_COMPREHENSION_ITERATIONS)
                        .build())
                .setStandardMacros(CelStandardMacro.STANDARD_MACROS)
                .addMessageTypes(Device.getDescriptor())
                .addVar(
                        VARIABLE,
                        StructTypeReference.create(Device.getDescriptor().getFullName()))
                .addFunctionDeclarations(CelFunctionDecl.newFunctionDeclaration(
                        "quantity",
                        CelOverloadDecl.newGlobalOverload(
                                QUANTITY_OVERLOAD,
                                "bytes in a Kubernetes quantity such as \"40Gi\"",
                                SimpleType.INT,
                                SimpleType.STRING)))
                .addFunctionBindings(
                        CelFunctionBinding.from(QUANTITY_OVERLOAD, String.class, DeviceExpressions::quantity))
                .setResultType(SimpleType.BOOL)
                .build();
    }

    private static Object quantity(String text) throws CelEvaluationException {
        try {
            return Quantity.parseBytes(text);
        } catch (IllegalArgumentException e) {
            throw new CelEvaluationException("quantity(): " + e.getMessage());
        }
    }

    /**
     * The compiled expression for {@code text}, from the cache when it was compiled before.
     *
     * @throws ExpressionException with CEL's message and the 1-based line and column of the first error
     */
    public DeviceExpression compile(String text) throws ExpressionException {
        synchronized (cache) {
            DeviceExpression cached = cache.get(text);
            if (cached != null) {
                return cached;
            }
        }
        // compiled outside the lock: a slow compile must not stall Fit calls that hit the cache
        DeviceExpression compiled = compileUncached(text);
        synchronized (cache) {
            cache.putIfAbsent(text, compiled);
        }
        return compiled;
    }

    /** How many compiled expressions are cached now. */
    public int cachedCount() {
        synchronized (cache) {
            return cache.size();
        }
    }

    private DeviceExpression compileUncached(String text) throws ExpressionException {
        if (text.length() > MAX_LENGTH) {
            throw new ExpressionException(
                    "expression is " + text.length() + " characters long; the limit is " + MAX_LENGTH, 0, 0);
        }
        CelValidationResult result = cel.compile(text);
        CelAbstractSyntaxTree ast;
        try {
            ast = result.getAst();
        } catch (CelValidationException e) {
            throw firstError(e);
        }
        checkConstantQuantities(ast);
        try {
            return new DeviceExpression(text, cel.createProgram(ast));
        } catch (CelEvaluationException e) {
            throw new ExpressionException(e.getMessage(), 0, 0);
        }
    }

    private static ExpressionException firstError(CelValidationException e) {
        if (e.getErrors().isEmpty()) {
            return new ExpressionException(e.getMessage(), 0, 0);
        }
        CelIssue issue = e.getErrors().getFirst();
        CelSourceLocation location = issue.getSourceLocation();
        boolean known = !CelSourceLocation.NONE.equals(location) && location.getLine() > 0;
        return new ExpressionException(
                issue.getMessage(), known ? location.getLine() : 0, known ? location.getColumn() + 1 : 0);
    }

    /** {@code quantity("40Gx")} with a literal is a mistake in the expression, not in some device: say so now. */
    private static void checkConstantQuantities(CelAbstractSyntaxTree ast) throws ExpressionException {
        Optional<CelExpr> bad = CelNavigableExpr.fromExpr(ast.getExpr())
                .allNodes()
                .map(CelNavigableExpr::expr)
                .filter(expr -> expr.getKind() == CelExpr.ExprKind.Kind.CALL
                        && expr.call().function().equals("quantity")
                        && expr.call().args().size() == 1
                        && isBadQuantityLiteral(expr.call().args().getFirst()))
                .findFirst();
        if (bad.isPresent()) {
            CelExpr literal = bad.get().call().args().getFirst();
            String message;
            try {
                Quantity.parseBytes(literal.constant().stringValue());
                throw new AssertionError("quantity literal parsed on second attempt");
            } catch (IllegalArgumentException e) {
                message = "quantity(): " + e.getMessage();
            }
            Optional<CelSourceLocation> location = Optional.ofNullable(
                            ast.getSource().getPositionsMap().get(literal.id()))
                    .flatMap(offset -> ast.getSource().getOffsetLocation(offset));
            throw new ExpressionException(
                    message,
                    location.map(CelSourceLocation::getLine).orElse(0),
                    location.map(l -> l.getColumn() + 1).orElse(0));
        }
    }

    private static boolean isBadQuantityLiteral(CelExpr argument) {
        if (argument.getKind() != CelExpr.ExprKind.Kind.CONSTANT
                || argument.constant().getKind() != CelConstant.Kind.STRING_VALUE) {
            return false;
        }
        try {
            Quantity.parseBytes(argument.constant().stringValue());
            return false;
        } catch (IllegalArgumentException e) {
            return true;
        }
    }
}
