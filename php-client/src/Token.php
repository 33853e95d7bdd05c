<?php

declare(strict_types=1);

namespace Cometbox;

use Cometbox\Exception\InvalidArgumentException;

/**
 * Browser tokens (docs/protocol.md, "Tokens"): "EXP.SIG", where EXP is the
 * expiry as a Unix time and SIG the unpadded base64url encoding of
 * HMAC-SHA256(secret, "cometbox:v1:" + client + ":" + EXP).
 *
 * A token lets a browser poll one client's queue until it expires. Client::token()
 * mints one from the client's token secret and a lifetime; mint() is the
 * pure function underneath, reproducing pkg/token/testdata/vectors.json.
 */
final class Token
{
    private function __construct()
    {
    }

    /**
     * @param string $secret the nodes' -token-secret (UTF-8 bytes)
     * @param int    $exp    the expiry, a Unix time in seconds
     *
     * @throws InvalidArgumentException for an empty secret, a bad client id or a negative expiry
     */
    public static function mint(string $secret, string $client, int $exp): string
    {
        if ($secret === '') {
            throw new InvalidArgumentException('token secret is empty: a token signed with it would prove nothing');
        }
        ClientId::check($client);
        if ($exp < 0) {
            throw new InvalidArgumentException(sprintf('token expiry %d: want a Unix time, 0 or more', $exp));
        }
        $mac = hash_hmac('sha256', 'cometbox:v1:' . $client . ':' . $exp, $secret, true);

        return $exp . '.' . rtrim(strtr(base64_encode($mac), '+/', '-_'), '=');
    }
}
