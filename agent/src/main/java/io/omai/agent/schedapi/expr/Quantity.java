package io.omai.agent.schedapi.expr;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Kubernetes quantities as byte counts, for the CEL function {@code quantity("40Gi")}: a decimal number with a
 * binary suffix (Ki, Mi, Gi, Ti, Pi, Ei), a decimal suffix (k, M, G, T, P, E) or an exponent ({@code 1e9}).
 * Kubernetes' CEL library returns a Quantity object; here the result is a plain int so it compares directly with
 * {@code device.memory}. Fractions must come out as whole bytes ({@code 1.5Gi} does, {@code 0.1} does not).
 */
public final class Quantity {
    private static final Pattern FORMAT =
            Pattern.compile("([0-9]+(?:\\.[0-9]*)?|\\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|[eE][+-]?[0-9]+)?");
    private static final Map<String, BigInteger> SUFFIXES = Map.ofEntries(
            Map.entry("Ki", BigInteger.TWO.pow(10)), Map.entry("Mi", BigInteger.TWO.pow(20)),
            Map.entry("Gi", BigInteger.TWO.pow(30)), Map.entry("Ti", BigInteger.TWO.pow(40)),
            Map.entry("Pi", BigInteger.TWO.pow(50)), Map.entry("Ei", BigInteger.TWO.pow(60)),
            Map.entry("k", BigInteger.TEN.pow(3)), Map.entry("M", BigInteger.TEN.pow(6)),
            Map.entry("G", BigInteger.TEN.pow(9)), Map.entry("T", BigInteger.TEN.pow(12)),
            Map.entry("P", BigInteger.TEN.pow(15)), Map.entry("E", BigInteger.TEN.pow(18)));

    private Quantity() {}

    /**
     * @throws IllegalArgumentException naming the text and the accepted forms
     */
    public static long parseBytes(String text) {
        Matcher m = FORMAT.matcher(text);
        if (!m.matches()) {
            throw new IllegalArgumentException("'" + text + "' is not a quantity; expected a number with an optional "
                    + "suffix Ki, Mi, Gi, Ti, Pi, Ei, k, M, G, T, P, E or an exponent, e.g. \"40Gi\"");
        }
        BigDecimal value = new BigDecimal(m.group(1).endsWith(".") ? m.group(1) + "0" : m.group(1));
        String suffix = m.group(2);
        if (suffix != null) {
            // "E" alone is exa, "Ei" exbi; only E followed by digits is an exponent
            value = SUFFIXES.containsKey(suffix)
                    ? value.multiply(new BigDecimal(SUFFIXES.get(suffix)))
                    : value.scaleByPowerOfTen(Integer.parseInt(suffix.substring(1)));
        }
        try {
            return value.stripTrailingZeros().toBigIntegerExact().longValueExact();
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException("'" + text + "' is not a whole number of bytes below 2^63");
        }
    }
}
