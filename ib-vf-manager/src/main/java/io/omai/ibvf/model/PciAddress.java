package io.omai.ibvf.model;

import java.util.regex.Pattern;

/** A PCI function address in sysfs' canonical form, {@code 0000:3b:00.1} (domain:bus:device.function, lower-case). */
public record PciAddress(String value) implements Comparable<PciAddress> {

    private static final Pattern FORMAT = Pattern.compile("[0-9a-f]{4}:[0-9a-f]{2}:[0-1][0-9a-f]\\.[0-7]");

    public PciAddress {
        if (value == null || !FORMAT.matcher(value).matches()) {
            throw new IllegalArgumentException("PCI address '" + value + "' is not of the form 0000:3b:00.1");
        }
    }

    public static PciAddress of(String value) {
        return new PciAddress(value);
    }

    public static boolean isPciAddress(String value) {
        return value != null && FORMAT.matcher(value).matches();
    }

    public int bus() {
        return Integer.parseInt(value.substring(5, 7), 16);
    }

    @Override
    public int compareTo(PciAddress other) {
        return value.compareTo(other.value);
    }

    @Override
    public String toString() {
        return value;
    }
}
