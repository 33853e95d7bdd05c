<?php

declare(strict_types=1);

namespace Cometbox\Internal;

/**
 * String helpers for checks and error messages.
 *
 * @internal
 */
final class Text
{
    private function __construct()
    {
    }

    /**
     * Quotes $value for an error message: control characters (and, in
     * invalid UTF-8, every byte above 0x7F) escaped, cut to a readable
     * length so a hostile value cannot blow up logs.
     */
    public static function quote(string $value, int $max = 40): string
    {
        $cut = strlen($value) > $max;
        if ($cut) {
            $value = substr($value, 0, $max);
        }
        $escape = "\0..\37\"\\\177";
        if (!self::isUtf8($value)) {
            $escape .= "\200..\377";
        }

        return '"' . addcslashes($value, $escape) . '"' . ($cut ? '...' : '');
    }

    public static function isUtf8(string $value): bool
    {
        return preg_match('//u', $value) === 1;
    }

    /**
     * Where $value stops being UTF-8: the offset and the value of its first
     * bad byte, e.g. "byte 0xFF at offset 7". Only for invalid UTF-8.
     */
    public static function firstBadByte(string $value): string
    {
        // The well-formed UTF-8 sequences of RFC 3629 (no overlongs, no surrogates).
        preg_match(
            '/^(?:[\x00-\x7F]|[\xC2-\xDF][\x80-\xBF]|\xE0[\xA0-\xBF][\x80-\xBF]|[\xE1-\xEC\xEE\xEF][\x80-\xBF]{2}'
            . '|\xED[\x80-\x9F][\x80-\xBF]|\xF0[\x90-\xBF][\x80-\xBF]{2}|[\xF1-\xF3][\x80-\xBF]{3}|\xF4[\x80-\x8F][\x80-\xBF]{2})*+/',
            $value,
            $m
        );
        $offset = strlen($m[0] ?? '');

        return sprintf('byte 0x%02X at offset %d', ord($value[$offset] ?? "\0"), $offset);
    }

    /** The code point of one UTF-8 encoded character. */
    public static function codePoint(string $char): int
    {
        $bytes = array_values((array) unpack('C*', $char));
        $n = count($bytes);
        if ($n <= 1) {
            return $bytes[0] ?? 0;
        }
        $code = $bytes[0] & (0xFF >> ($n + 1));
        for ($i = 1; $i < $n; $i++) {
            $code = ($code << 6) | ($bytes[$i] & 0x3F);
        }

        return $code;
    }
}
