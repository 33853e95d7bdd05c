<?php

declare(strict_types=1);

namespace Cometbox\Exception;

/**
 * Bad input found before anything was sent: an invalid client id, a
 * payload that cannot be encoded, an unknown option. Nothing was sent.
 */
final class InvalidArgumentException extends \InvalidArgumentException implements CometboxException
{
}
