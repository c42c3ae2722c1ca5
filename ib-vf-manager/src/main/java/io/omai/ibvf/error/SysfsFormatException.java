package io.omai.ibvf.error;

/** A sysfs attribute exists but its content is not what the kernel ABI documents. */
public final class SysfsFormatException extends IbVfException {

    private final String path;
    private final String value;

    public SysfsFormatException(String path, String value, String expected) {
        super("sysfs attribute " + path + " holds '" + value + "', expected " + expected, null);
        this.path = path;
        this.value = value;
    }

    public String path() {
        return path;
    }

    public String value() {
        return value;
    }
}
