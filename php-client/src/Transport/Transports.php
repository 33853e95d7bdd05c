<?php

declare(strict_types=1);

namespace Cometbox\Transport;

use Cometbox\Exception\InvalidArgumentException;
use Cometbox\Exception\LogicException;

/**
 * Picks a transport: by name, or the best one this PHP can run.
 */
final class Transports
{
    /** The built-in transports, best first ("native" needs the cometbox extension). */
    public const NAMES = ['native', 'curl', 'stream', 'socket'];

    private function __construct()
    {
    }

    /**
     * The first transport this PHP can run: the cometbox extension's, then
     * curl, then streams (with allow_url_fopen), then raw sockets.
     *
     * @throws LogicException when none can run
     */
    public static function detect(): Transport
    {
        foreach (self::NAMES as $name) {
            if (self::isAvailable($name)) {
                return self::named($name);
            }
        }
        throw new LogicException('no transport can run here: the cometbox and curl extensions are missing, allow_url_fopen is off and fsockopen() is disabled');
    }

    /**
     * A new transport by name: "native", "curl", "stream" or "socket", or
     * "auto" for detect().
     *
     * @throws InvalidArgumentException for another name
     * @throws LogicException           when that transport cannot run here
     */
    public static function named(string $name): Transport
    {
        switch ($name) {
            case 'auto':
                return self::detect();
            case 'native':
                return new NativeTransport();
            case 'curl':
                return new CurlTransport();
            case 'stream':
                return new StreamTransport();
            case 'socket':
                return new SocketTransport();
        }
        throw new InvalidArgumentException(sprintf('unknown transport "%s": want auto, %s', $name, implode(', ', self::NAMES)));
    }

    /**
     * Whether the named built-in transport can run here.
     */
    public static function isAvailable(string $name): bool
    {
        switch ($name) {
            case 'native':
                return NativeTransport::isAvailable();
            case 'curl':
                return CurlTransport::isAvailable();
            case 'stream':
                return StreamTransport::isAvailable();
            case 'socket':
                return SocketTransport::isAvailable();
        }

        return false;
    }
}
