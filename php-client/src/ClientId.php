<?php

declare(strict_types=1);

namespace Cometbox;

use Cometbox\Exception\InvalidArgumentException;

/**
 * The rules for client ids (docs/protocol.md, "Concepts"): 1 to 128
 * characters of A-Z a-z 0-9 _ . : @ -, so "user:42", "alice@example.com"
 * and "session.9f3a-1" are all valid. Idempotency keys use the same rules.
 */
final class ClientId
{
    /** Matches a valid client id or idempotency key. */
    public const PATTERN = '/^[A-Za-z0-9_.:@-]{1,128}\z/';

    private function __construct()
    {
    }

    public static function isValid(string $id): bool
    {
        return preg_match(self::PATTERN, $id) === 1;
    }

    /**
     * @param string $what names the value in the error, e.g. 'client id' or 'idempotency key'
     *
     * @throws InvalidArgumentException naming the bad value and the rule
     */
    public static function check(string $id, string $what = 'client id'): void
    {
        if (self::isValid($id)) {
            return;
        }
        if ($id === '') {
            throw new InvalidArgumentException($what . ' is empty: want 1 to 128 characters of A-Z a-z 0-9 _ . : @ -');
        }
        throw new InvalidArgumentException(sprintf(
            '%s %s: want 1 to 128 characters of A-Z a-z 0-9 _ . : @ -',
            $what,
            Internal\Text::quote($id)
        ));
    }
}
